// gelu.cc -- AIE2 (npu1) core kernel for kernels/gelu/gelu.py: y = bf16(0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))))
// with x read from bf16 and the formula in f32. mlir-aie's aie_kernels/aie2/gelu.cc uses a bf16
// LUT tanh (getTanhBf16); this one keeps f32 so that it matches the reference numerics
// (npu_whisper_app/devices/reference.py: gelu_kernel) to within the bf16 output rounding.
#define NOCPP
#include <aie_api/aie.hpp>
#include <stdint.h>

extern "C" void gelu_bf16(const bfloat16 *x, bfloat16 *y, int32_t n) {
  const float c = 0.7978845608028654f;
  for (int i = 0; i < n; i++) {
    const float v = (float)x[i];
    const float u = c * (v + 0.044715f * v * v * v);
    const float t = 1.0f - 2.0f / (__builtin_expf(2.0f * u) + 1.0f);
    y[i] = (bfloat16)(0.5f * v * (1.0f + t));
  }
}

// layernorm.cc -- AIE2 (npu1) core kernel for kernels/layernorm/layernorm.py
// R rows of bf16 x per call: mean and variance in f32 (two passes), y = (x - mean) * rsqrt(var + eps)
// * gamma + beta in f32, rounded to bf16 (nearest even). Structure after mlir-aie
// aie_kernels/aie2/layer_norm.cc (Apache-2.0 WITH LLVM-exception, (c) AMD), with f32 statistics.
// Mirrored by npu_whisper_app/devices/reference.py: layernorm_kernel (which keeps the statistics in
// f64: the difference is far below the bf16 output rounding).
#define NOCPP
#include <aie_api/aie.hpp>
#include <stdint.h>

#ifndef R
#define R 16
#endif

extern "C" void layernorm_bf16(const bfloat16 *x, const float *gamma, const float *beta, const float *params,
                               bfloat16 *y, int32_t n) {
  const float eps = params[0];
  for (int r = 0; r < R; r++) {
    const bfloat16 *xr = x + r * n;
    aie::accum<accfloat, 16> s = aie::zeros<accfloat, 16>();
    for (int i = 0; i < n; i += 16) s = aie::add(s, aie::load_v<16>(xr + i));
    const float mean = aie::reduce_add(s.to_vector<float>()) / n;
    float var = 0.0f;
    for (int i = 0; i < n; i++) { float d = (float)xr[i] - mean; var += d * d; }
    var /= n;
    const float inv = 1.0f / __builtin_sqrtf(var + eps);
    for (int i = 0; i < n; i++) y[r * n + i] = (bfloat16)(((float)xr[i] - mean) * inv * gamma[i] + beta[i]);
  }
}

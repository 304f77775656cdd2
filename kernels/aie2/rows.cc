// rows.cc -- AIE2 core kernel for kernels/layernorm/layernorm.py. NOT COMPILED HERE.
// ROWS_PER_CALL rows of bf16 x: one pass of 16-lane f32 sums (sum, sum of squares), aie::invsqrt,
// y = (x - mean) * rstd * gamma + beta as vector ops, bf16 out (after mlir-aie
// aie_kernels/aie2/layer_norm.cc). params: gamma[n] | beta[n] | eps (f32).
#define NOCPP
#include <aie_api/aie.hpp>
#include <stdint.h>

#ifndef ROWS_PER_CALL
#define ROWS_PER_CALL 4
#endif

extern "C" void layernorm_rows_bf16(const bfloat16 *x, const float *params, bfloat16 *y, int32_t n) {
  const float *gamma = params, *beta = params + n;
  const float eps = params[2 * n];
  for (int r = 0; r < ROWS_PER_CALL; r++) {
    const bfloat16 *xr = x + r * n;
    aie::accum<accfloat, 16> s = aie::zeros<accfloat, 16>(), q = aie::zeros<accfloat, 16>();
    for (int i = 0; i < n; i += 16)
      chess_prepare_for_pipelining {
        aie::vector<bfloat16, 16> v = aie::load_v<16>(xr + i);
        s = aie::add(s, v);
        q = aie::mac(q, v, v);
      }
    const float mean = aie::reduce_add(s.to_vector<float>()) / n;
    const float var = aie::reduce_add(q.to_vector<float>()) / n - mean * mean;
    const float rstd = aie::invsqrt(var + eps);
    for (int i = 0; i < n; i += 16)
      chess_prepare_for_pipelining {
        aie::vector<float, 16> v = aie::sub(aie::to_float(aie::load_v<16>(xr + i)), mean);
        v = aie::mul(aie::mul(v, rstd).to_vector<float>(), aie::load_v<16>(gamma + i)).to_vector<float>();
        aie::store_v(y + r * n + i, aie::add(v, aie::load_v<16>(beta + i)).template to_vector<bfloat16>());
      }
  }
}

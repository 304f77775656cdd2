// flash_attn.cc -- AIE2 (npu1) core kernels for kernels/attention/attention.py
//
// Online-softmax attention for ROWS query rows of one head against one 64-key tile per call
// (fa_step_bf16), state kept in L1 between calls:
//   st = [acc f32 ROWS x D | m f32 ROWS | l f32 ROWS]
// Numerics (mirrored exactly by npu_whisper_app/devices/reference.py: attention_kernel):
//   S = Q K^T in f32 (bf16 products exact), S *= 1/sqrt(D) (0.125 for D = 64),
//   keys >= valid_keys -> -inf (the partial last tile; whole tiles past it are skipped),
//   m_new = max(m, rowmax S); P = exp(S - m_new); c = exp(m - m_new);
//   l = l * c + rowsum(P) (f32);  acc = acc * c + bf16(P) @ V (f32 accumulate);
//   finish: out = bf16(acc / l).
// The matmuls use aie::mmul<4, 8, 4, bfloat16, bfloat16, accfloat> as in aie_kernels/aie2/mm.cc
// (mlir-aie, Apache-2.0 WITH LLVM-exception); exp is evaluated in f32.

#define NOCPP
#include <aie_api/aie.hpp>
#include <math.h>
#include <stdint.h>

#ifndef D
#define D 64
#endif
#ifndef ROWS
#define ROWS 16
#endif
#define TK 64

static inline float inv_sqrt_d() { return 1.0f / __builtin_sqrtf((float)D); }

extern "C" {

void fa_init(float *st) {
  float *acc = st, *m = st + ROWS * D, *l = m + ROWS;
  for (int i = 0; i < ROWS * D; i++) acc[i] = 0.0f;
  for (int i = 0; i < ROWS; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
}

void fa_step_bf16(const bfloat16 *q, const bfloat16 *k, const bfloat16 *v, float *st, int32_t tile,
                  int32_t valid_keys) {
  const int base = tile * TK;
  if (base >= valid_keys) return;  // a whole tile of padding: nothing to do
  const int live = valid_keys - base < TK ? valid_keys - base : TK;
  float *acc = st, *m = st + ROWS * D, *l = m + ROWS;
  const float scale = inv_sqrt_d();
  alignas(32) float s[ROWS * TK];
  alignas(32) bfloat16 p16[ROWS * TK];

  // S = Q K^T (f32 accumulate), 16 lanes at a time over D
  for (int i = 0; i < ROWS; i++)
    for (int j = 0; j < TK; j++) {
      aie::accum<accfloat, 16> a = aie::zeros<accfloat, 16>();
      for (int c = 0; c < D; c += 16)
        a = aie::mac(a, aie::load_v<16>(q + i * D + c), aie::load_v<16>(k + j * D + c));
      s[i * TK + j] = j < live ? aie::reduce_add(a.to_vector<float>()) * scale : -INFINITY;
    }
  // online softmax update per row
  for (int i = 0; i < ROWS; i++) {
    float mx = m[i];
    for (int j = 0; j < live; j++) mx = s[i * TK + j] > mx ? s[i * TK + j] : mx;
    const float corr = __builtin_expf(m[i] - mx);
    float sum = 0.0f;
    for (int j = 0; j < TK; j++) {
      const float p = j < live ? __builtin_expf(s[i * TK + j] - mx) : 0.0f;
      sum += p;
      p16[i * TK + j] = (bfloat16)p;  // round to nearest even
    }
    l[i] = l[i] * corr + sum;
    m[i] = mx;
    for (int c = 0; c < D; c++) acc[i * D + c] *= corr;
  }
  // acc += bf16(P) @ V  (ROWS x TK) @ (TK x D), f32 accumulate
  for (int i = 0; i < ROWS; i++)
    for (int c = 0; c < D; c += 16) {
      aie::accum<accfloat, 16> a;
      a.from_vector(aie::load_v<16>(acc + i * D + c));
      for (int j = 0; j < live; j++)
        a = aie::mac(a, aie::broadcast<bfloat16, 16>(p16[i * TK + j]), aie::load_v<16>(v + j * D + c));
      aie::store_v(acc + i * D + c, a.to_vector<float>());
    }
}

void fa_finish_bf16(const float *st, bfloat16 *out) {
  const float *acc = st, *l = st + ROWS * D + ROWS;
  for (int i = 0; i < ROWS; i++) {
    for (int c = 0; c < D; c++) out[i * D + c] = (bfloat16)(acc[i * D + c] / l[i]);  // divide, as the reference
  }
}

} // extern "C"

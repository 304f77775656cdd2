// mha.cc -- AIE2 (npu1) core kernels for kernels/attention/attention.py. NOT COMPILED HERE.
//
// One (head, 64-row query tile) at a time, online softmax over 64-key tiles:
//   mha_begin: acc = 0, m = -inf, l = 0; the core's cycle counter (start), its col/row and a
//              magic word into the tile's 65th output row
//   mha_step : S = Q K^T via aie::mmul<4, 8, 4> (bf16 -> f32), 16 query rows at a time into
//              `scratch` (a static buffer, not the stack); scale 1/sqrt(64) folded into the exp2
//              argument; keys >= valid_keys -> -inf (the 1500-frame tail); vector row max;
//              P = exp2(...) in bf16 (what the P.V mmul takes), corr = exp2(m_old - m_new),
//              l = l * corr + rowsum(P); acc = acc * corr + P V via aie::mmul<4, 8, 4>
//   mha_end  : O = acc * inv(l) -> bf16; cycle counter (end) into the timing row
// Numerics mirrored by npu_whisper_app/devices/reference.py (attention_kernel).
// Timing row (little-endian u32 words): [0,1] start cycles lo/hi, [2,3] end lo/hi, [4] col,
// [5] row, [6] 0x4d484131 ("MHA1"); parsed by npu_whisper_app/devices/xrt_timing.py.
#define NOCPP
#include <aie_api/aie.hpp>
#include <stdint.h>

#ifndef DH
#define DH 64
#endif
#ifndef QROWS
#define QROWS 64
#endif
#ifndef KROWS
#define KROWS 64
#endif
static constexpr unsigned SUB = 16;
using MM = aie::mmul<4, 8, 4, bfloat16, bfloat16, accfloat>;

static inline void put_cycles(bfloat16 *timing_row, int slot) {
  uint64_t c = aie::tile::current().cycles();
  uint32_t *w = reinterpret_cast<uint32_t *>(timing_row);
  w[slot] = (uint32_t)c;
  w[slot + 1] = (uint32_t)(c >> 32);
}

extern "C" {

void mha_begin(float *state, bfloat16 *out, int32_t col, int32_t row) {
  const aie::vector<float, 16> z = aie::zeros<float, 16>();
  for (int i = 0; i < QROWS * DH; i += 16) aie::store_v(state + i, z);
  float *m = state + QROWS * DH, *l = m + QROWS;
  for (int i = 0; i < QROWS; i += 16) {
    aie::store_v(m + i, aie::broadcast<float, 16>(-3.0e38f));
    aie::store_v(l + i, z);
  }
  uint32_t *w = reinterpret_cast<uint32_t *>(out + QROWS * DH);
  w[4] = (uint32_t)col; w[5] = (uint32_t)row; w[6] = 0x4d484131u;
  put_cycles(out + QROWS * DH, 0);
}

void mha_step(const bfloat16 *q, const bfloat16 *k, const bfloat16 *v, float *state, float *scratch,
              int32_t valid_keys_left) {
  const float c = 0.125f * 1.4426950408889634f;  // 1/sqrt(64) * log2(e)
  float *acc = state, *m = state + QROWS * DH, *l = m + QROWS;
  for (unsigned r0 = 0; r0 < QROWS; r0 += SUB) {
    for (unsigned i = 0; i < SUB; i += 4)  // S[16 x 64] = Q[r0:r0+16] K^T, 4 x 4 blocks
      for (unsigned j = 0; j < KROWS; j += 4) {
        MM acc_s(aie::zeros<float, MM::size_C>());
        for (unsigned d = 0; d < DH; d += 8)
          acc_s.mac(aie::load_v<MM::size_A>(q + (r0 + i) * DH + d),
                    aie::transpose(aie::load_v<MM::size_B>(k + j * DH + d), 4, 8));
        aie::store_v(scratch + i * KROWS + j * 4, acc_s.template to_vector<float>());
      }
    for (unsigned i = 0; i < SUB; ++i) {
      float *srow = scratch + i * KROWS;
      aie::vector<float, 16> mx = aie::broadcast<float, 16>(m[r0 + i]);
      for (unsigned j = 0; j < KROWS; j += 16) {
        aie::vector<float, 16> sv = aie::mul(aie::load_v<16>(srow + j), c).to_vector<float>();
        if ((int)j + 16 > valid_keys_left) {
          aie::vector<int32_t, 16> idx = aie::add(aie::iota<int32_t, 16>(), (int32_t)j);
          sv = aie::select(sv, aie::broadcast<float, 16>(-3.0e38f), aie::ge(idx, valid_keys_left));
        }
        aie::store_v(srow + j, sv);
        mx = aie::max(mx, sv);
      }
      const float m_new = aie::reduce_max(mx);
      const float corr = aie::exp2<float>(aie::broadcast<float, 16>(m[r0 + i] - m_new)).get(0);
      aie::accum<accfloat, 16> sum = aie::zeros<accfloat, 16>();
      for (unsigned j = 0; j < KROWS; j += 16) {
        aie::vector<bfloat16, 16> p = aie::exp2<bfloat16>(aie::sub(aie::load_v<16>(srow + j), m_new));
        sum = aie::add(sum, p);
        aie::store_v(reinterpret_cast<bfloat16 *>(srow) + j, p);
      }
      l[r0 + i] = l[r0 + i] * corr + aie::reduce_add(sum.to_vector<float>());
      m[r0 + i] = m_new;
      for (unsigned d = 0; d < DH; d += 16)
        aie::store_v(acc + (r0 + i) * DH + d, aie::mul(aie::load_v<16>(acc + (r0 + i) * DH + d), corr).to_vector<float>());
    }
    for (unsigned i = 0; i < SUB; i += 4)  // acc[r0:r0+16] += P V
      for (unsigned d = 0; d < DH; d += 4) {
        MM o(aie::load_v<MM::size_C>(acc + (r0 + i) * DH + d));
        for (unsigned j = 0; j < KROWS; j += 8)
          o.mac(aie::load_v<MM::size_A>(reinterpret_cast<bfloat16 *>(scratch + i * KROWS) + j),
                aie::load_v<MM::size_B>(v + j * DH + d));
        aie::store_v(acc + (r0 + i) * DH + d, o.template to_vector<float>());
      }
  }
}

void mha_end(const float *state, bfloat16 *out) {
  const float *acc = state, *l = state + QROWS * DH + QROWS;
  for (unsigned i = 0; i < QROWS; ++i) {
    const float inv_l = aie::inv(l[i]);
    for (unsigned d = 0; d < DH; d += 16)
      aie::store_v(out + i * DH + d, aie::mul(aie::load_v<16>(acc + i * DH + d), inv_l).template to_vector<bfloat16>());
  }
  put_cycles(out + QROWS * DH, 2);
}

}  // extern "C"

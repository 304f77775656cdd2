// The decoder's cross-attention on int8 copies of a window's keys and values (included by
// cpu_decoder_f16.cpp; AVX-512 only).
//
// A decoded token reads its window's cross-attention keys and values in every layer:
// base, a 30 s window: 18 MB as fp16, which is most of a batched step's memory traffic
// (8 rows: 147 MB of the step's ~190 MB). As int8 with one scale per (frame, head), the
// 64 numbers of a head's key or value at one frame sharing max|x| / 127, that is half.
// Scores are the int8 dot products times the frame's key scale; the softmax weights are
// multiplied by the frame's value scale before the weighted sum. Rounding error: at most
// half a step (max|x| / 254) per number, measured on the words, not assumed (the batched
// mode only; openai-whisper's loop keeps the fp16 copies).
#pragma once

#include "cpu_vec.h"

#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace npuw {
// the optional per-window frame counts of a cross-attention call (int64 [Bk], each 1..T),
// nullptr when absent: every window has T frames
inline const int64_t* window_lengths(const c10::optional<torch::Tensor>& lengths, int64_t Bk, int64_t T) {
  if (!lengths.has_value() || !lengths->defined()) return nullptr;
  const torch::Tensor& l = *lengths;
  TORCH_CHECK(l.scalar_type() == at::kLong && l.numel() == Bk && l.is_contiguous(), "cross-attention: lengths int64 [windows]");
  const int64_t* p = l.data_ptr<int64_t>();
  for (int64_t i = 0; i < Bk; ++i) TORCH_CHECK(p[i] >= 1 && p[i] <= T, "cross-attention: a window's length must be 1..T");
  return p;
}
}  // namespace npuw

#if defined(__AVX512F__)
#include <immintrin.h>

namespace npuw {

constexpr int64_t kQ8Block = 16 * 64;  // one key block: 16 frames x 64 dims, int8

// one (frame, head): 64 floats -> 64 int8 (round to nearest even), returns the scale
inline float quantize64(const float* x, int8_t* out) {
  __m512 v[4];
  const float amax = load64_absmax(x, v);
  const __m512 inv = _mm512_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
  for (int c = 0; c < 4; ++c)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * c), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v[c], inv))));
  return amax / 127.f;
}

// keys x[T, ld] (head h at columns h*64..) -> blocks [H, Tp/16, 64, 16] int8 and
// scales [H, Tp] (padded frames: zeros, never scored)
inline void quantize_keys(const float* x, int64_t T, int64_t H, int64_t ld, int8_t* kb, float* ks, int64_t Tp) {
  const int64_t nb = Tp / 16;
  at::parallel_for(0, H * nb, 4, [&](int64_t i0, int64_t i1) {
    alignas(64) int8_t tmp[64];
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t h = i / nb, blk = i % nb;
      int8_t* out = kb + i * kQ8Block;
      float* sc = ks + h * Tp + blk * 16;
      for (int64_t j = 0; j < 16; ++j) {
        const int64_t t = blk * 16 + j;
        if (t >= T) {
          sc[j] = 0.f;
          for (int64_t d = 0; d < 64; ++d) out[d * 16 + j] = 0;
          continue;
        }
        sc[j] = quantize64(x + t * ld + h * 64, tmp);
        for (int64_t d = 0; d < 64; ++d) out[d * 16 + j] = tmp[d];
      }
    }
  });
}

// values x[T, ld] -> [H, T, 64] int8 and scales [H, T]
inline void quantize_values(const float* x, int64_t T, int64_t H, int64_t ld, int8_t* v, float* vs) {
  at::parallel_for(0, H * T, 256, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t h = i / T, t = i % T;
      vs[i] = quantize64(x + t * ld + h * 64, v + i * 64);
    }
  });
}

inline __m512 widen16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// As cross_raw (cpu_decoder_f16.cpp) on the int8 copies:
//   q [Bk, R, H, 64] fp32, kb [Bk, H, blocks, 64, 16] int8, ks [Bk, H, blocks*16],
//   v [Bk, H, T, 64] int8, vs [Bk, H, T]  ->  out [Bk, R, H, 64] fp32
inline void cross_raw_q8(const float* qp, int64_t Bk, int64_t R, int64_t H, const int8_t* kp, const float* ksp, int64_t blocks,
                         const int8_t* vp, const float* vsp, int64_t T, float* op, const uint8_t* live = nullptr,
                         const int64_t* lengths = nullptr) {
  const int64_t D = 64;
  const __m512 scale = _mm512_set1_ps(0.125f);  // 1 / sqrt(64)
  const std::vector<int64_t> work = live_heads(Bk, R, H, op, live);
  at::parallel_for(0, static_cast<int64_t>(work.size()), 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores(static_cast<size_t>(R * blocks * 16));
    for (int64_t w = i0; w < i1; ++w) {
      const int64_t i = work[static_cast<size_t>(w)];
      const int64_t bk = i / H, h = i % H;
      const int8_t* K = kp + i * blocks * kQ8Block;
      const float* KS = ksp + i * blocks * 16;
      const int8_t* V = vp + i * T * D;
      const float* VS = vsp + i * T;
      const int64_t Tw = lengths ? lengths[bk] : T, own = (Tw + 15) / 16;  // this window's frames
      const float* qrow[8];
      for (int64_t r = 0; r < R; ++r) qrow[r] = qp + ((bk * R + r) * H + h) * D;
      for (int64_t blk = 0; blk < own; ++blk) {
        const int8_t* kblk = K + blk * kQ8Block;
        // four chains of FMAs (d mod 4): one row per window (the batched mode) would
        // otherwise wait on each FMA's latency; the block two ahead prefetched a line
        // (four d) at a time
        __m512 acc[8][4];
        for (int64_t r = 0; r < R; ++r)
          for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
        for (int64_t d = 0; d < 64; d += 4) {
          _mm_prefetch(reinterpret_cast<const char*>(kblk + 2 * kQ8Block + d * 16), _MM_HINT_T0);
          __m512 kk[4];
          for (int c = 0; c < 4; ++c) kk[c] = widen16(kblk + (d + c) * 16);
          for (int64_t r = 0; r < R; ++r)
            for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_fmadd_ps(_mm512_set1_ps(qrow[r][d + c]), kk[c], acc[r][c]);
        }
        const __m512 ks = _mm512_mul_ps(_mm512_loadu_ps(KS + blk * 16), scale);
        for (int64_t r = 0; r < R; ++r) {
          const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_add_ps(acc[r][2], acc[r][3]));
          _mm512_storeu_ps(scores.data() + r * blocks * 16 + blk * 16, _mm512_mul_ps(sum, ks));
        }
      }
      float inv[8];
      softmax_rows(scores.data(), R, blocks * 16, Tw, inv);
      // the weighted sum: frames in pairs (two sets of accumulators for up to four rows,
      // so that one row does not wait on each FMA's latency)
      const int64_t sets = R <= 4 ? 2 : 1;
      __m512 o[2][8][4];
      for (int64_t e = 0; e < sets; ++e)
        for (int64_t r = 0; r < R; ++r)
          for (int c = 0; c < 4; ++c) o[e][r][c] = _mm512_setzero_ps();
      for (int64_t t = 0; t < Tw; ++t) {
        const int8_t* vr = V + t * D;
        _mm_prefetch(reinterpret_cast<const char*>(vr + 16 * D), _MM_HINT_T0);  // 16 frames (lines) ahead
        __m512 vv[4];
        for (int c = 0; c < 4; ++c) vv[c] = widen16(vr + 16 * c);
        const float vscale = VS[t];
        const int64_t e = sets == 2 ? (t & 1) : 0;
        for (int64_t r = 0; r < R; ++r) {
          const __m512 p = _mm512_set1_ps(scores[r * blocks * 16 + t] * vscale);
          for (int c = 0; c < 4; ++c) o[e][r][c] = _mm512_fmadd_ps(p, vv[c], o[e][r][c]);
        }
      }
      for (int64_t r = 0; r < R; ++r) {
        float* dst = op + ((bk * R + r) * H + h) * D;
        for (int c = 0; c < 4; ++c) {
          const __m512 sum = sets == 2 ? _mm512_add_ps(o[0][r][c], o[1][r][c]) : o[0][r][c];
          _mm512_storeu_ps(dst + 16 * c, _mm512_mul_ps(sum, _mm512_set1_ps(inv[r])));
        }
      }
    }
  });
}

// the Python bindings: int8 copies of a batch of windows' keys or values ([B, T, H*64] fp32): see cpu_cross_q8.h
inline std::vector<torch::Tensor> quantize_cross_q8(const torch::Tensor& x, int64_t H, bool keys) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() == 3 && x.size(2) == H * 64, "quantize_cross_q8: x [B, T, H*64] float32");
  const torch::Tensor xc = x.contiguous();
  const int64_t B = xc.size(0), T = xc.size(1), D = xc.size(2);
  const int64_t Tp = keys ? (T + 15) / 16 * 16 : T;
  torch::Tensor q = keys ? torch::empty({B, H, Tp / 16, 64, 16}, xc.options().dtype(at::kChar)) : torch::empty({B, H, T, 64}, xc.options().dtype(at::kChar));
  torch::Tensor s = torch::empty({B, H, Tp}, xc.options());
  const float* xp = xc.data_ptr<float>();
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = s.data_ptr<float>();
  pybind11::gil_scoped_release nogil;
  for (int64_t b = 0; b < B; ++b) {
    if (keys)
      quantize_keys(xp + b * T * D, T, H, D, qp + b * H * Tp * 64, sp + b * H * Tp, Tp);
    else
      quantize_values(xp + b * T * D, T, H, D, qp + b * H * T * 64, sp + b * H * T);
  }
  return {q, s};
}

inline torch::Tensor cross_attention_q8(const torch::Tensor& q, const torch::Tensor& kb, const torch::Tensor& ks, const torch::Tensor& v,
                                 const torch::Tensor& vs, int64_t T, const c10::optional<torch::Tensor>& lengths) {
  TORCH_CHECK(q.scalar_type() == at::kFloat && kb.scalar_type() == at::kChar && v.scalar_type() == at::kChar && ks.scalar_type() == at::kFloat &&
                  vs.scalar_type() == at::kFloat, "cross_attention_q8: types");
  TORCH_CHECK(q.dim() == 4 && kb.dim() == 5 && v.dim() == 4 && kb.is_contiguous() && v.is_contiguous() && ks.is_contiguous() && vs.is_contiguous(),
              "cross_attention_q8: shapes");
  const int64_t Bk = q.size(0), R = q.size(1), H = q.size(2), D = q.size(3);
  const int64_t blocks = kb.size(2);
  TORCH_CHECK(D == 64 && kb.size(3) == 64 && kb.size(4) == 16 && v.size(3) == 64, "cross_attention_q8: head size 64");
  TORCH_CHECK(kb.size(0) == Bk && v.size(0) == Bk && kb.size(1) == H && v.size(1) == H && v.size(2) == T && blocks * 16 >= T &&
                  ks.numel() == Bk * H * blocks * 16 && vs.numel() == Bk * H * T, "cross_attention_q8: sizes");
  TORCH_CHECK(R >= 1 && R <= 8, "cross_attention_q8: 1 to 8 rows per window");
  const torch::Tensor qc = q.contiguous();
  torch::Tensor out = torch::empty({Bk, R, H, D}, qc.options());
  const float* qp = qc.data_ptr<float>();
  float* op = out.data_ptr<float>();
  pybind11::gil_scoped_release nogil;
  const int64_t* lens = window_lengths(lengths, Bk, T);
  cross_raw_q8(qp, Bk, R, H, kb.data_ptr<int8_t>(), ks.data_ptr<float>(), blocks, v.data_ptr<int8_t>(), vs.data_ptr<float>(), T, op, nullptr, lens);
  return out;
}

}  // namespace npuw
#else
namespace npuw {
inline std::vector<torch::Tensor> quantize_cross_q8(const torch::Tensor&, int64_t, bool) {
  TORCH_CHECK(false, "quantize_cross_q8 needs AVX-512");
  return {};
}
inline torch::Tensor cross_attention_q8(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, int64_t,
                                        const c10::optional<torch::Tensor>&) {
  TORCH_CHECK(false, "cross_attention_q8 needs AVX-512");
  return {};
}
}  // namespace npuw
#endif

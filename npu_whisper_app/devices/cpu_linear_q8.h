// The batched decoder's products in int8 with VNNI (included by cpu_decoder_f16.cpp).
//
// y[M, N] = x[M, K] · W[N, K]ᵀ (+ b, then GELU) for 1-8 rows, as vpdpbusd products: W int8
// with one scale per output row (max|w| / 127), x int8 with one scale per row and per
// group of 64 of K (max|x| / 127 over the group: an outlier spoils only its own group),
// int32 sums per group, then the group's scale applied in fp32. The fp16 kernel does
// M x N x K fp32 FMAs, 16 a vector instruction, and with 8 rows its time is those FMAs,
// not the weights' bytes; vpdpbusd does 64 multiply-adds an instruction from half the
// bytes. Not exact (unlike the fp16 kernel): the batched mode only, measured on words.
//
// vpdpbusd multiplies unsigned by signed bytes: x is stored as xq + 128 (0..255) and
// 128 x the group's sum of each weight row is taken off the group's int32 sum.
// Weights are packed [N/16][K/4][16][4]: one 64-byte load holds 4 consecutive k of 16
// outputs, so the 16 sums of a tile sit in one register and need no horizontal adds.
#pragma once

#include "cpu_vec.h"

#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define NPUW_HAS_Q8_LINEAR 1
#include <immintrin.h>

namespace npuw {

constexpr int64_t kQ8Group = 64;  // activation scale group along K

// a packed weight: w [Np/16][K/4][16][4] int8, ws [Np] (per output row), gc [K/64][Np]
// (128 x the group's sum of each row); Np = N rounded up to 16, padded rows zero
struct Q8Weight {
  const int8_t* w;
  const float* ws;
  const int32_t* gc;
  int64_t N, K;
};

// pack w[N, K] (fp32) as Q8Weight's arrays (sized by the caller)
inline void pack_q8(const float* src, int64_t N, int64_t K, int8_t* w, float* ws, int32_t* gc) {
  const int64_t Np = (N + 15) / 16 * 16, G = K / kQ8Group;
  at::parallel_for(0, Np, 16, [&](int64_t n0, int64_t n1) {
    std::vector<int8_t> q(static_cast<size_t>(K));
    for (int64_t n = n0; n < n1; ++n) {
      float amax = 0.f;
      if (n < N)
        for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(src[n * K + k]));
      const float inv = amax > 0.f ? 127.f / amax : 0.f;
      ws[n] = amax / 127.f;
      for (int64_t k = 0; k < K; ++k) q[k] = n < N ? static_cast<int8_t>(std::nearbyint(src[n * K + k] * inv)) : 0;
      const int64_t tile = n / 16, lane = n % 16;
      for (int64_t k = 0; k < K; ++k) w[((tile * (K / 4) + k / 4) * 16 + lane) * 4 + k % 4] = q[k];
      for (int64_t g = 0; g < G; ++g) {
        int32_t s = 0;
        for (int64_t k = g * kQ8Group; k < (g + 1) * kQ8Group; ++k) s += q[k];
        gc[g * Np + n] = 128 * s;
      }
    }
  });
}

// rows of x as unsigned bytes (xq + 128) and one scale per (row, group)
inline void quantize_groups(const float* x, int64_t M, int64_t K, uint8_t* xq, float* xs) {
  const int64_t G = K / kQ8Group;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t g = 0; g < G; ++g) {
      const float* p = x + m * K + g * kQ8Group;
      __m512 v[4];
      const float amax = load64_absmax(p, v);
      const __m512 inv = _mm512_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
      xs[m * G + g] = amax / 127.f;
      for (int c = 0; c < 4; ++c) {
        const __m512i qi = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v[c], inv)), _mm512_set1_epi32(128));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(xq + m * K + g * kQ8Group + 16 * c), _mm512_cvtusepi32_epi8(qi));
      }
    }
}

// 16 outputs (tile t) for M rows
template <int M>
inline void tile_q8(const uint8_t* xq, const float* xs, const Q8Weight& W, int64_t t, const float* b, float* y, int64_t ldy) {
  const int64_t K = W.K, G = K / kQ8Group, Np = (W.N + 15) / 16 * 16;
  const int8_t* wt = W.w + t * K * 16;
  __m512 accf[M];
  for (int m = 0; m < M; ++m) accf[m] = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    __m512i acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_si512();
    const int8_t* wg = wt + g * kQ8Group * 16;
    for (int64_t kk = 0; kk < kQ8Group / 4; ++kk) {
      _mm_prefetch(reinterpret_cast<const char*>(wg + 2 * K * 16 + kk * 64), _MM_HINT_T0);  // the tile two ahead
      const __m512i w = _mm512_loadu_si512(wg + kk * 64);
      for (int m = 0; m < M; ++m) {
        const __m512i xb = _mm512_set1_epi32(*reinterpret_cast<const int32_t*>(xq + m * K + g * kQ8Group + kk * 4));
        acc[m] = _mm512_dpbusd_epi32(acc[m], xb, w);
      }
    }
    const __m512i corr = _mm512_loadu_si512(W.gc + g * Np + t * 16);
    for (int m = 0; m < M; ++m)
      accf[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[m], corr)), _mm512_set1_ps(xs[m * G + g]), accf[m]);
  }
  const __m512 ws = _mm512_loadu_ps(W.ws + t * 16);
  const int64_t n0 = t * 16, n = std::min<int64_t>(16, W.N - n0);
  const __mmask16 k = n == 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  const __m512 bias = b ? _mm512_maskz_loadu_ps(k, b + n0) : _mm512_setzero_ps();
  for (int m = 0; m < M; ++m) _mm512_mask_storeu_ps(y + m * ldy + n0, k, _mm512_fmadd_ps(accf[m], ws, bias));
}

template <int M>
void run_q8(const uint8_t* xq, const float* xs, const Q8Weight& W, const float* b, float* y) {
  const int64_t tiles = (W.N + 15) / 16;
  const int64_t grain = std::max<int64_t>(1, 32768 / (16 * W.K));  // ~32 KB of weights a work item
  at::parallel_for(0, tiles, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) tile_q8<M>(xq, xs, W, t, b, y, W.N);
  });
}

// y[M, N] = x[M, K] · Wᵀ + b (then GELU); M from 1 to 8, K a multiple of 64
inline void linear_q8_raw(const float* x, int64_t M, const Q8Weight& W, const float* b, float* y, bool gelu) {
  std::vector<uint8_t> xq(static_cast<size_t>(M * W.K));
  std::vector<float> xs(static_cast<size_t>(M * (W.K / kQ8Group)));
  quantize_groups(x, M, W.K, xq.data(), xs.data());
  switch (M) {
    case 1: run_q8<1>(xq.data(), xs.data(), W, b, y); break;
    case 2: run_q8<2>(xq.data(), xs.data(), W, b, y); break;
    case 3: run_q8<3>(xq.data(), xs.data(), W, b, y); break;
    case 4: run_q8<4>(xq.data(), xs.data(), W, b, y); break;
    case 5: run_q8<5>(xq.data(), xs.data(), W, b, y); break;
    case 6: run_q8<6>(xq.data(), xs.data(), W, b, y); break;
    case 7: run_q8<7>(xq.data(), xs.data(), W, b, y); break;
    default: run_q8<8>(xq.data(), xs.data(), W, b, y); break;
  }
  if (gelu)
    for (int64_t i = 0; i < M * W.N; ++i) y[i] = 0.5f * y[i] * (1.f + std::erf(y[i] * 0.70710678118654752f));
}

// the Python bindings
inline std::vector<torch::Tensor> pack_q8_tensor(const torch::Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.size(1) % kQ8Group == 0, "pack_q8: w [N, K], K a multiple of 64");
  const torch::Tensor wf = w.to(at::kFloat).contiguous();
  const int64_t N = wf.size(0), K = wf.size(1), Np = (N + 15) / 16 * 16;
  torch::Tensor wp = torch::empty({Np / 16, K / 4, 16, 4}, wf.options().dtype(at::kChar));
  torch::Tensor ws = torch::empty({Np}, wf.options());
  torch::Tensor gc = torch::empty({K / kQ8Group, Np}, wf.options().dtype(at::kInt));
  pybind11::gil_scoped_release nogil;
  pack_q8(wf.data_ptr<float>(), N, K, wp.data_ptr<int8_t>(), ws.data_ptr<float>(), gc.data_ptr<int32_t>());
  return {wp, ws, gc};
}

inline torch::Tensor linear_q8(const torch::Tensor& x, const torch::Tensor& wp, const torch::Tensor& ws, const torch::Tensor& gc, int64_t N,
                               const c10::optional<torch::Tensor>& bias, bool gelu) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && wp.scalar_type() == at::kChar && ws.scalar_type() == at::kFloat && gc.scalar_type() == at::kInt,
              "linear_q8: types");
  const int64_t K = wp.size(1) * 4, Np = wp.size(0) * 16;
  TORCH_CHECK(wp.is_contiguous() && ws.is_contiguous() && gc.is_contiguous() && x.size(-1) == K && K % kQ8Group == 0 && N <= Np && N > Np - 16 &&
                  ws.numel() == Np && gc.numel() == K / kQ8Group * Np, "linear_q8: shapes (pack_q8's)");
  const torch::Tensor xc = x.contiguous();
  const int64_t M = xc.numel() / K;
  TORCH_CHECK(M >= 1 && M <= 8, "linear_q8: 1 to 8 rows");
  const float* b = nullptr;
  torch::Tensor bc;
  if (bias.has_value() && bias->defined() && bias->numel()) {
    bc = bias->to(at::kFloat).contiguous();
    TORCH_CHECK(bc.numel() == N, "linear_q8: bias [N]");
    b = bc.data_ptr<float>();
  }
  auto sizes = xc.sizes().vec();
  sizes.back() = N;
  torch::Tensor y = torch::empty(sizes, xc.options());
  const Q8Weight W{wp.data_ptr<int8_t>(), ws.data_ptr<float>(), gc.data_ptr<int32_t>(), N, K};
  const float* xp = xc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  pybind11::gil_scoped_release nogil;
  linear_q8_raw(xp, M, W, b, yp, gelu);
  return y;
}

inline bool has_q8() { return true; }

}  // namespace npuw
#else
namespace npuw {
inline std::vector<torch::Tensor> pack_q8_tensor(const torch::Tensor&) {
  TORCH_CHECK(false, "pack_q8 needs AVX512-VNNI");
  return {};
}
inline torch::Tensor linear_q8(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, int64_t,
                               const c10::optional<torch::Tensor>&, bool) {
  TORCH_CHECK(false, "linear_q8 needs AVX512-VNNI");
  return {};
}
inline bool has_q8() { return false; }
}  // namespace npuw
#endif

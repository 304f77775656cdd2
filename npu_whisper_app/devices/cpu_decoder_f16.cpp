// The fast decoder's per-token kernels, reading fp16 copies of what each token reads.
//
// linear_f16: y = x · Wᵀ + b (optionally GELU) for a few rows of x (one per beam).
//
// Whisper's checkpoints are fp16, so its weights are exactly representable in fp16: the
// products here are the fp32 products of the fp32 path, accumulated in fp32 (in another
// order, as any BLAS). What changes is the bytes read per decoded token: decoding a token
// reads every decoder weight once, a memory-bound matrix-vector product, and fp16 halves
// that traffic (base: 95 MB instead of 190 MB a token).
//
// AVX-512F (vcvtph2ps on 16 lanes), else AVX2+F16C+FMA (8 lanes), else scalar. Rows of W
// are split over torch's own OpenMP threads (at::parallel_for), R rows at a time so that
// each loaded slice of x feeds several independent accumulators.

#include "cpu_vec.h"
#include "cpu_cross_q8.h"
#include "cpu_linear_q8.h"

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__F16C__) && defined(__FMA__))
#include <immintrin.h>
#endif

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <vector>
#include <limits>

namespace {

#if defined(__AVX512F__)
constexpr int64_t kLanes = 16;
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
constexpr int64_t kLanes = 8;
inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#else
constexpr int64_t kLanes = 1;
#endif

constexpr int64_t kAhead = 4;  // blocks of R weight rows prefetched ahead

// rows n .. n+R-1 of y for the M rows of x
template <int M, int R>
inline void rows(const float* x, int64_t K, const uint16_t* W, int64_t n, const float* b, float* y, int64_t N) {
#if defined(__AVX512F__)
  __m512 acc[M][R];
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    // the rows a few blocks ahead, a cache line (32 weights) at a time: the hardware
    // prefetcher alone kept the vocabulary's product at ~9 GB/s
    if ((k & 31) == 0)
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(W + (n + r + kAhead * R) * K + k), _MM_HINT_T0);
    __m512 xv[M];
    for (int m = 0; m < M; ++m) xv[m] = _mm512_loadu_ps(x + m * K + k);
    for (int r = 0; r < R; ++r) {
      const __m512 w = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(W + (n + r) * K + k)));
      for (int m = 0; m < M; ++m) acc[m][r] = _mm512_fmadd_ps(w, xv[m], acc[m][r]);
    }
  }
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) y[m * N + n + r] = _mm512_reduce_add_ps(acc[m][r]) + (b ? b[n + r] : 0.f);
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
  __m256 acc[M][R];
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; k += 8) {
    for (int r = 0; r < R; ++r) {
      const __m256 w = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(W + (n + r) * K + k)));
      for (int m = 0; m < M; ++m) acc[m][r] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + m * K + k), acc[m][r]);
    }
  }
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) y[m * N + n + r] = hsum256(acc[m][r]) + (b ? b[n + r] : 0.f);
#else
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) {
      const uint16_t* w = W + (n + r) * K;
      float s = 0.f;
      for (int64_t k = 0; k < K; ++k) s += c10::detail::fp16_ieee_to_fp32_value(w[k]) * x[m * K + k];
      y[m * N + n + r] = s + (b ? b[n + r] : 0.f);
    }
#endif
}

#if defined(__AVX512F__)
// one row of x: each weight row streamed in order with four accumulators (one memory
// stream per thread, which the prefetchers follow better than R rows side by side)
inline void row1(const float* x, int64_t K, const uint16_t* W, int64_t n, const float* b, float* y) {
  const uint16_t* w = W + n * K;
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(w + k + 1024), _MM_HINT_T0);
    a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k))), _mm512_loadu_ps(x + k), a0);
    a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k + 16))), _mm512_loadu_ps(x + k + 16), a1);
    a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k + 32))), _mm512_loadu_ps(x + k + 32), a2);
    a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k + 48))), _mm512_loadu_ps(x + k + 48), a3);
  }
  for (; k < K; k += 16)
    a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k))), _mm512_loadu_ps(x + k), a0);
  y[n] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) + (b ? b[n] : 0.f);
}

void run_row1(const float* x, int64_t K, const uint16_t* W, int64_t N, const float* b, float* y) {
  const int64_t grain = std::max<int64_t>(1, 16384 / K);
  at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) row1(x, K, W, n, b, y);
  });
}
#endif

template <int M, int R>
void run(const float* x, int64_t K, const uint16_t* W, int64_t N, const float* b, float* y) {
  const int64_t blocks = N / R;
  // ~32 KB of weights per work item at the least: enough to amortise the hand-out
  const int64_t grain = std::max<int64_t>(1, 16384 / (R * K));
  at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i) rows<M, R>(x, K, W, i * R, b, y, N);
  });
  for (int64_t n = blocks * R; n < N; ++n) rows<M, 1>(x, K, W, n, b, y, N);
}

// rows of W per work step: M x R accumulators and R weight vectors fit the registers
// (32 zmm with AVX-512, 16 ymm with AVX2)
#if defined(__AVX512F__)
template <int M>
constexpr int kRows = M <= 5 ? 4 : 2;
#else
template <int M>
constexpr int kRows = M <= 4 ? 2 : 1;
#endif

template <int M>
void run_m(const float* x, int64_t K, const uint16_t* W, int64_t N, const float* b, float* y) {
  run<M, kRows<M>>(x, K, W, N, b, y);
}

// GELU as torch's default (erf) form
inline void gelu_inplace(float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * y[i] * (1.f + std::erf(y[i] * 0.70710678118654752f));
}

// y[M, N] = x[M, K] · W[N, K]ᵀ + b (then GELU); M from 1 to 8
void linear_raw(const float* xp, int64_t M, int64_t K, const uint16_t* wp, int64_t N, const float* b, float* yp, bool gelu) {
  switch (M) {
    case 1:
#if defined(__AVX512F__)
      run_row1(xp, K, wp, N, b, yp);
#else
      run_m<1>(xp, K, wp, N, b, yp);
#endif
      break;
    case 2: run_m<2>(xp, K, wp, N, b, yp); break;
    case 3: run_m<3>(xp, K, wp, N, b, yp); break;
    case 4: run_m<4>(xp, K, wp, N, b, yp); break;
    case 5: run_m<5>(xp, K, wp, N, b, yp); break;
    case 6: run_m<6>(xp, K, wp, N, b, yp); break;
    case 7: run_m<7>(xp, K, wp, N, b, yp); break;
    default: run_m<8>(xp, K, wp, N, b, yp); break;
  }
  if (gelu) gelu_inplace(yp, M * N);
}

torch::Tensor linear_f16(const torch::Tensor& x, const torch::Tensor& w, const c10::optional<torch::Tensor>& bias, bool gelu) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && w.scalar_type() == at::kHalf, "linear_f16: x float32, w float16");
  TORCH_CHECK(w.dim() == 2 && w.is_contiguous(), "linear_f16: w must be a contiguous [N, K] matrix");
  const int64_t N = w.size(0), K = w.size(1);
  TORCH_CHECK(x.size(-1) == K && K % kLanes == 0, "linear_f16: K must match and be a multiple of ", kLanes);
  const torch::Tensor xc = x.contiguous();
  const int64_t M = xc.numel() / K;
  TORCH_CHECK(M >= 1 && M <= 8, "linear_f16: 1 to 8 rows");
  const float* b = nullptr;
  torch::Tensor bc;
  if (bias.has_value() && bias->defined()) {
    bc = bias->contiguous();
    TORCH_CHECK(bc.scalar_type() == at::kFloat && bc.numel() == N, "linear_f16: bias float32 [N]");
    b = bc.data_ptr<float>();
  }
  auto sizes = xc.sizes().vec();
  sizes.back() = N;
  torch::Tensor y = torch::empty(sizes, xc.options());
  const float* xp = xc.data_ptr<float>();
  const uint16_t* wp = reinterpret_cast<const uint16_t*>(w.data_ptr<at::Half>());
  float* yp = y.data_ptr<float>();
  pybind11::gil_scoped_release nogil;
  linear_raw(xp, M, K, wp, N, b, yp, gelu);
  return y;
}

#if defined(__AVX512F__)
using npuw::exp_sum;

// One decoded position's cross-attention for R query rows sharing one window's keys and
// values (the beams of one audio window): per head, scores over all T frames, softmax,
// weighted sum of values.
//   q  [Bk, R, H, 64] fp32      kb [Bk, H, Tp/16, 64, 16] fp16 (keys, 16 frames a block)
//   v  [Bk, H, T, 64] fp16      -> [Bk, R, H, 64] fp32
// Keys are blocked so that 16 frames' scores come from 64 broadcast FMAs with no
// horizontal sums, and each block is one contiguous 2 KB read.
// ``live`` (optional, Bk flags): windows whose rows are all finished are skipped (their
// output rows are zeros) and the work is handed out over the live ones only.
// ``lengths`` (optional, Bk frame counts <= T): each window's own frames (the batched
// mode's windows, each trimmed to its chunk); the frames after them are never read.
void cross_raw(const float* qp, int64_t Bk, int64_t R, int64_t H, const uint16_t* kp, int64_t blocks, const uint16_t* vp, int64_t T, float* op,
               const uint8_t* live = nullptr, const int64_t* lengths = nullptr) {
  const int64_t D = 64;
  const float scale = 0.125f;  // 1 / sqrt(64)
  const std::vector<int64_t> work = npuw::live_heads(Bk, R, H, op, live);
  at::parallel_for(0, static_cast<int64_t>(work.size()), 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores(static_cast<size_t>(R * blocks * 16));
    for (int64_t w = i0; w < i1; ++w) {
      const int64_t i = work[static_cast<size_t>(w)];
      const int64_t bk = i / H, h = i % H;
      const uint16_t* K = kp + (bk * H + h) * blocks * 64 * 16;
      const uint16_t* V = vp + (bk * H + h) * T * 64;
      const int64_t Tw = lengths ? lengths[bk] : T, own = (Tw + 15) / 16;
      const float* qrow[8];
      for (int64_t r = 0; r < R; ++r) qrow[r] = qp + ((bk * R + r) * H + h) * D;
      // scores[r][t] = scale * q_r · k_t
      for (int64_t blk = 0; blk < own; ++blk) {
        const uint16_t* kblk = K + blk * 64 * 16;
        // two chains of FMAs (even and odd d): with one row per window (the batched mode)
        // a single chain waited on each FMA's latency; every line of the block two ahead
        // is prefetched (one line per two d)
        __m512 acc[8], acc2[8];
        for (int64_t r = 0; r < R; ++r) acc[r] = acc2[r] = _mm512_setzero_ps();
        for (int64_t d = 0; d < 64; d += 2) {
          _mm_prefetch(reinterpret_cast<const char*>(kblk + 2 * 64 * 16 + d * 16), _MM_HINT_T0);
          const __m512 k0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kblk + d * 16)));
          const __m512 k1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kblk + (d + 1) * 16)));
          for (int64_t r = 0; r < R; ++r) {
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(qrow[r][d]), k0, acc[r]);
            acc2[r] = _mm512_fmadd_ps(_mm512_set1_ps(qrow[r][d + 1]), k1, acc2[r]);
          }
        }
        for (int64_t r = 0; r < R; ++r)
          _mm512_storeu_ps(scores.data() + r * blocks * 16 + blk * 16, _mm512_mul_ps(_mm512_add_ps(acc[r], acc2[r]), _mm512_set1_ps(scale)));
      }
      // softmax over the T real frames, then the weighted sum of values
      float inv[8];
      npuw::softmax_rows(scores.data(), R, blocks * 16, Tw, inv);
      __m512 o[8][4];
      for (int64_t r = 0; r < R; ++r)
        for (int c = 0; c < 4; ++c) o[r][c] = _mm512_setzero_ps();
      for (int64_t t = 0; t < Tw; ++t) {
        const uint16_t* vr = V + t * 64;
        _mm_prefetch(reinterpret_cast<const char*>(vr + 16 * 64), _MM_HINT_T0);  // 16 frames ahead, both lines
        _mm_prefetch(reinterpret_cast<const char*>(vr + 16 * 64 + 32), _MM_HINT_T0);
        __m512 vv[4];
        for (int c = 0; c < 4; ++c) vv[c] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(vr + 16 * c)));
        for (int64_t r = 0; r < R; ++r) {
          const __m512 p = _mm512_set1_ps(scores[r * blocks * 16 + t]);
          for (int c = 0; c < 4; ++c) o[r][c] = _mm512_fmadd_ps(p, vv[c], o[r][c]);
        }
      }
      for (int64_t r = 0; r < R; ++r) {
        float* dst = op + ((bk * R + r) * H + h) * D;
        for (int c = 0; c < 4; ++c) _mm512_storeu_ps(dst + 16 * c, _mm512_mul_ps(o[r][c], _mm512_set1_ps(inv[r])));
      }
    }
  });
}

torch::Tensor cross_attention_f16(const torch::Tensor& q, const torch::Tensor& kb, const torch::Tensor& v, int64_t T, const c10::optional<torch::Tensor>& lengths) {
  TORCH_CHECK(q.scalar_type() == at::kFloat && kb.scalar_type() == at::kHalf && v.scalar_type() == at::kHalf, "cross_attention_f16: types");
  TORCH_CHECK(q.dim() == 4 && kb.dim() == 5 && v.dim() == 4 && kb.is_contiguous() && v.is_contiguous(), "cross_attention_f16: shapes");
  const int64_t Bk = q.size(0), R = q.size(1), H = q.size(2), D = q.size(3);
  const int64_t blocks = kb.size(2);
  TORCH_CHECK(D == 64 && kb.size(3) == 64 && kb.size(4) == 16 && v.size(3) == 64, "cross_attention_f16: head size 64");
  TORCH_CHECK(kb.size(0) == Bk && v.size(0) == Bk && kb.size(1) == H && v.size(1) == H && v.size(2) == T && blocks * 16 >= T, "cross_attention_f16: sizes");
  TORCH_CHECK(R >= 1 && R <= 8, "cross_attention_f16: 1 to 8 rows per window");
  const torch::Tensor qc = q.contiguous();
  torch::Tensor out = torch::empty({Bk, R, H, D}, qc.options());
  const float* qp = qc.data_ptr<float>();
  const uint16_t* kp = reinterpret_cast<const uint16_t*>(kb.data_ptr<at::Half>());
  const uint16_t* vp = reinterpret_cast<const uint16_t*>(v.data_ptr<at::Half>());
  float* op = out.data_ptr<float>();
  pybind11::gil_scoped_release nogil;
  const int64_t* lens = npuw::window_lengths(lengths, Bk, T);
  cross_raw(qp, Bk, R, H, kp, blocks, vp, T, op, nullptr, lens);
  return out;
}

// LayerNorm of M rows of D (nn.LayerNorm, eps 1e-5)
void layer_norm(const float* x, int64_t M, int64_t D, const float* g, const float* b, float* y) {
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * D;
    float* yr = y + m * D;
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < D; ++i) mean += xr[i];
    mean /= static_cast<double>(D);
    for (int64_t i = 0; i < D; ++i) {
      const double d = xr[i] - mean;
      var += d * d;
    }
    const float rstd = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(D) + 1e-5));
    const float mu = static_cast<float>(mean);
    for (int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - mu) * rstd * g[i] + b[i];
  }
}

inline float dot64(const float* a, const float* b) {
  __m512 s = _mm512_mul_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(b));
  s = _mm512_fmadd_ps(_mm512_loadu_ps(a + 16), _mm512_loadu_ps(b + 16), s);
  s = _mm512_fmadd_ps(_mm512_loadu_ps(a + 32), _mm512_loadu_ps(b + 32), s);
  s = _mm512_fmadd_ps(_mm512_loadu_ps(a + 48), _mm512_loadu_ps(b + 48), s);
  return _mm512_reduce_add_ps(s);
}

// Self-attention of M rows, each one new position at `off`, over its own cache rows
// 0..off (keys/values fp32 [M, nctx, D], this position's already written).
// ``live`` (optional, M flags) as for cross_raw: finished rows are skipped (zeros).
void self_attention(const float* q, const float* kc, const float* vc, int64_t M, int64_t H, int64_t nctx, int64_t D, int64_t off, float* out,
                    const uint8_t* live = nullptr) {
  const int64_t n = off + 1;
  std::vector<int64_t> work;
  work.reserve(static_cast<size_t>(M * H));
  for (int64_t m = 0; m < M; ++m) {
    if (live && !live[m]) {
      std::fill(out + m * D, out + (m + 1) * D, 0.f);
      continue;
    }
    for (int64_t h = 0; h < H; ++h) work.push_back(m * H + h);
  }
  at::parallel_for(0, static_cast<int64_t>(work.size()), 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> p(static_cast<size_t>(n));
    for (int64_t w = i0; w < i1; ++w) {
      const int64_t i = work[static_cast<size_t>(w)];
      const int64_t m = i / H, h = i % H;
      const float* qh = q + m * D + h * 64;
      const float* K = kc + m * nctx * D + h * 64;
      const float* V = vc + m * nctx * D + h * 64;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t t = 0; t < n; ++t) {
        p[t] = 0.125f * dot64(qh, K + t * D);
        mx = std::max(mx, p[t]);
      }
      const float inv = 1.f / exp_sum(p.data(), n, mx);
      __m512 o[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int64_t t = 0; t < n; ++t) {
        const __m512 pt = _mm512_set1_ps(p[t]);
        for (int c = 0; c < 4; ++c) o[c] = _mm512_fmadd_ps(pt, _mm512_loadu_ps(V + t * D + 16 * c), o[c]);
      }
      for (int c = 0; c < 4; ++c) _mm512_storeu_ps(out + m * D + h * 64 + 16 * c, _mm512_mul_ps(o[c], _mm512_set1_ps(inv)));
    }
  });
}

const uint16_t* f16(const torch::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::Half>()); }
const float* f32(const torch::Tensor& t) { return t.numel() ? t.data_ptr<float>() : nullptr; }

// One decoded position through every decoder layer, for M rows (beams) of one new token
// each: the Python loop's LayerNorms, fp16 products, kv-cache writes, self- and
// cross-attention and GELU MLP in one call (no Python between them).
//   x [M, D] fp32 (token + positional embedding), layers[i]: 22 tensors (see
//   fast_decoder.FastDecoder.step_params), caches: kc0, vc0, kc1, ... [M, nctx, D],
//   cross: kb0, v0, kb1, ... (fp16, per window) or, int8 (cpu_cross_q8.h), kb0, ks0, v0,
//   vs0, kb1, ... (four per layer), rep: rows per window.
//   live: empty, or M uint8 flags; a row with flag 0 has finished (its output is not
//   read): its attention reads none of its keys and values (cross-attention: a window
//   whose rows have all finished). The products still take every row, so a live row's
//   numbers are the same either way.
//   lengths: empty, or M / rep int64 frame counts: each window's own frames (<= T).
torch::Tensor decoder_step(const torch::Tensor& x, const std::vector<std::vector<torch::Tensor>>& layers,
                           const std::vector<torch::Tensor>& caches, const std::vector<torch::Tensor>& cross,
                           int64_t T, int64_t off, int64_t rep, int64_t H, const c10::optional<torch::Tensor>& live,
                           const c10::optional<torch::Tensor>& lengths) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() == 2 && x.is_contiguous(), "decoder_step: x [M, D] float32");
  const int64_t M = x.size(0), D = x.size(1);
  TORCH_CHECK(M >= 1 && M <= 8 && M % rep == 0 && D == H * 64, "decoder_step: 1 to 8 rows, head size 64");
  const size_t per = layers.empty() ? 2 : cross.size() / layers.size();
  TORCH_CHECK(caches.size() == 2 * layers.size() && (per == 2 || per == 4) && cross.size() == per * layers.size(),
              "decoder_step: one cache and one window (2 fp16 or 4 int8 tensors) per layer");
  if (per == 4)
    for (size_t i = 0; i < cross.size(); i += 2)
      TORCH_CHECK(cross[i].scalar_type() == at::kChar && cross[i + 1].scalar_type() == at::kFloat && cross[i].is_contiguous() && cross[i + 1].is_contiguous(),
                  "decoder_step: int8 keys/values with float32 scales");
  const int64_t nctx = caches[0].size(1);
  TORCH_CHECK(off >= 0 && off < nctx, "decoder_step: decoder context exceeded");
  const int64_t* lens = npuw::window_lengths(lengths, M / rep, T);
  const uint8_t* row_live = nullptr;
  std::vector<uint8_t> window_live;
  if (live.has_value() && live->defined()) {
    TORCH_CHECK(live->scalar_type() == at::kByte && live->numel() == M && live->is_contiguous(), "decoder_step: live [M] uint8");
    row_live = live->data_ptr<uint8_t>();
    window_live.assign(static_cast<size_t>(M / rep), 0);
    for (int64_t m = 0; m < M; ++m) window_live[static_cast<size_t>(m / rep)] |= row_live[m];
  }
  // the layer's eight products: fp16 weights (22 tensors a layer) or int8 (38: each
  // product's packed weight, scales, group corrections and bias; cpu_linear_q8.h)
  const size_t nparams = layers.empty() ? 22 : layers[0].size();
  TORCH_CHECK(nparams == 22 || nparams == 38, "decoder_step: 22 (fp16) or 38 (int8) tensors a layer");
#if !defined(NPUW_HAS_Q8_LINEAR)
  TORCH_CHECK(nparams == 22, "decoder_step: int8 products need AVX512-VNNI");
#endif
  struct Lin {
    const std::vector<torch::Tensor>* P;
    size_t i;  // first tensor
    bool q8;
    void operator()(const float* in, int64_t M, int64_t K, int64_t N, float* out, bool gelu) const {
      const auto& p = *P;
#if defined(NPUW_HAS_Q8_LINEAR)
      if (q8) {
        const npuw::Q8Weight w{p[i].data_ptr<int8_t>(), p[i + 1].data_ptr<float>(), p[i + 2].data_ptr<int32_t>(), N, K};
        npuw::linear_q8_raw(in, M, w, f32(p[i + 3]), out, gelu);
        return;
      }
#endif
      linear_raw(in, M, K, f16(p[i]), N, f32(p[i + 1]), out, gelu);
    }
  };
  torch::Tensor out = x.clone();
  float* xp = out.data_ptr<float>();
  std::vector<float> y(M * D), q(M * D), a(M * D), t(M * D), h(M * 4 * D);
  pybind11::gil_scoped_release nogil;
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto& P = layers[l];
    const bool q8 = nparams == 38;
    const size_t w = q8 ? 4 : 2;  // tensors a product
    // layout: ln, q, k, v, o, ln, cq, co, ln, fc1, fc2
    const size_t ln0 = 0, pq = 2, pk = pq + w, pv = pk + w, po = pv + w, ln1 = po + w, pcq = ln1 + 2, pco = pcq + w, ln2 = pco + w,
                 pf1 = ln2 + 2, pf2 = pf1 + w;
    auto lin = [&](size_t i) { return Lin{&P, i, q8}; };
    float* kc = caches[2 * l].data_ptr<float>();
    float* vc = caches[2 * l + 1].data_ptr<float>();
    // self-attention, this position's key/value written into the cache
    layer_norm(xp, M, D, f32(P[ln0]), f32(P[ln0 + 1]), y.data());
    lin(pq)(y.data(), M, D, D, q.data(), false);
    lin(pk)(y.data(), M, D, D, t.data(), false);
    for (int64_t m = 0; m < M; ++m) std::copy(t.data() + m * D, t.data() + (m + 1) * D, kc + (m * nctx + off) * D);
    lin(pv)(y.data(), M, D, D, t.data(), false);
    for (int64_t m = 0; m < M; ++m) std::copy(t.data() + m * D, t.data() + (m + 1) * D, vc + (m * nctx + off) * D);
    self_attention(q.data(), kc, vc, M, H, nctx, D, off, a.data(), row_live);
    lin(po)(a.data(), M, D, D, t.data(), false);
    for (int64_t i = 0; i < M * D; ++i) xp[i] += t[i];
    // cross-attention on the window's fp16 (or int8) keys/values
    layer_norm(xp, M, D, f32(P[ln1]), f32(P[ln1 + 1]), y.data());
    lin(pcq)(y.data(), M, D, D, q.data(), false);
    const uint8_t* wlive = row_live ? window_live.data() : nullptr;
    if (per == 4) {
      const torch::Tensor& kb = cross[4 * l];
      npuw::cross_raw_q8(q.data(), M / rep, rep, H, kb.data_ptr<int8_t>(), cross[4 * l + 1].data_ptr<float>(), kb.size(2),
                         cross[4 * l + 2].data_ptr<int8_t>(), cross[4 * l + 3].data_ptr<float>(), T, a.data(), wlive, lens);
    } else {
      const torch::Tensor& kb = cross[2 * l];
      cross_raw(q.data(), M / rep, rep, H, f16(kb), kb.size(2), f16(cross[2 * l + 1]), T, a.data(), wlive, lens);
    }
    lin(pco)(a.data(), M, D, D, t.data(), false);
    for (int64_t i = 0; i < M * D; ++i) xp[i] += t[i];
    // MLP
    layer_norm(xp, M, D, f32(P[ln2]), f32(P[ln2 + 1]), y.data());
    lin(pf1)(y.data(), M, D, 4 * D, h.data(), true);
    lin(pf2)(h.data(), M, 4 * D, D, t.data(), false);
    for (int64_t i = 0; i < M * D; ++i) xp[i] += t[i];
  }
  return out;
}
#else
torch::Tensor cross_attention_f16(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, int64_t, const c10::optional<torch::Tensor>&) {
  TORCH_CHECK(false, "cross_attention_f16 needs AVX-512");
  return {};
}
torch::Tensor decoder_step(const torch::Tensor&, const std::vector<std::vector<torch::Tensor>>&, const std::vector<torch::Tensor>&,
                           const std::vector<torch::Tensor>&, int64_t, int64_t, int64_t, int64_t, const c10::optional<torch::Tensor>&,
                           const c10::optional<torch::Tensor>&) {
  TORCH_CHECK(false, "decoder_step needs AVX-512");
  return {};
}
#endif

const char* isa() {
#if defined(__AVX512F__)
  return "avx512f";
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
  return "avx2+f16c";
#else
  return "scalar";
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("linear_f16", &linear_f16, "x[..., K] float32 (1-8 rows) · w[N, K] float16ᵀ + bias (then GELU) -> [..., N] float32",
        pybind11::arg("x"), pybind11::arg("w"), pybind11::arg("bias") = pybind11::none(), pybind11::arg("gelu") = false);
  m.def("cross_attention_f16", &cross_attention_f16, "q[Bk, R, H, 64] over blocked fp16 keys kb[Bk, H, T/16, 64, 16] and values v[Bk, H, T, 64]",
        pybind11::arg("q"), pybind11::arg("kb"), pybind11::arg("v"), pybind11::arg("T"), pybind11::arg("lengths") = pybind11::none());
  m.def("quantize_cross_q8", &npuw::quantize_cross_q8, "int8 copies of keys (blocked, keys=True) or values of x[B, T, H*64], one scale per (frame, head)",
        pybind11::arg("x"), pybind11::arg("n_head"), pybind11::arg("keys"));
  m.def("cross_attention_q8", &npuw::cross_attention_q8, "cross_attention_f16 on int8 keys kb[Bk, H, T/16, 64, 16] (scales ks) and values v[Bk, H, T, 64] (scales vs)",
        pybind11::arg("q"), pybind11::arg("kb"), pybind11::arg("ks"), pybind11::arg("v"), pybind11::arg("vs"), pybind11::arg("T"),
        pybind11::arg("lengths") = pybind11::none());
  m.def("pack_q8", &npuw::pack_q8_tensor, "w[N, K] -> int8 packed weight, per-row scales, group corrections (linear_q8's operands)",
        pybind11::arg("w"));
  m.def("linear_q8", &npuw::linear_q8, "x[..., K] float32 (1-8 rows) · the packed int8 weight of pack_q8 (+ bias, then GELU) -> [..., N]",
        pybind11::arg("x"), pybind11::arg("w"), pybind11::arg("ws"), pybind11::arg("gc"), pybind11::arg("n"),
        pybind11::arg("bias") = pybind11::none(), pybind11::arg("gelu") = false);
  m.def("has_q8", &npuw::has_q8, "the int8 products (AVX512-VNNI) are built in");
  m.def("decoder_step", &decoder_step, "one decoded position through every decoder layer (AVX-512)",
        pybind11::arg("x"), pybind11::arg("layers"), pybind11::arg("caches"), pybind11::arg("cross"), pybind11::arg("T"),
        pybind11::arg("off"), pybind11::arg("rep"), pybind11::arg("n_head"), pybind11::arg("live") = pybind11::none(),
        pybind11::arg("lengths") = pybind11::none());
  m.def("isa", &isa, "the instruction set the kernel was compiled for");
  m.attr("lanes") = kLanes;
}

// Shared by the cpu kernels (cpu_attention.cpp, cpu_decoder_f16.cpp): ATen's vectorised
// float type for the instruction set this build targets, and the softmax pieces.
#pragma once

// ATen's Vectorized<float> picks its implementation from CPU_CAPABILITY_*, which torch's
// own build sets per kernel file; an extension built with -march=native sets it here.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define CPU_CAPABILITY_AVX512
#define CPU_CAPABILITY AVX512
#elif defined(__AVX2__) && defined(__FMA__)
#define CPU_CAPABILITY_AVX2
#define CPU_CAPABILITY AVX2
#else
#define CPU_CAPABILITY DEFAULT
#endif

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace npuw {

using Vec = at::vec::Vectorized<float>;

inline float row_max(const float* x, int64_t n) {
  int64_t j = 0;
  Vec acc(-INFINITY);
  for (; j + Vec::size() <= n; j += Vec::size()) acc = at::vec::maximum(acc, Vec::loadu(x + j));
  float mx = at::vec::vec_reduce_all<float>([](Vec& a, Vec& b) { return at::vec::maximum(a, b); }, acc);
  for (; j < n; ++j) mx = std::max(mx, x[j]);
  return mx;
}

// x[j] = exp(x[j] - m) in place; returns the sum.
inline float exp_sum(float* x, int64_t n, float m) {
  int64_t j = 0;
  Vec acc(0.f), vm(m);
  for (; j + Vec::size() <= n; j += Vec::size()) {
    const Vec e = (Vec::loadu(x + j) - vm).exp();
    e.store(x + j);
    acc = acc + e;
  }
  float s = at::vec::vec_reduce_all<float>([](Vec& a, Vec& b) { return a + b; }, acc);
  for (; j < n; ++j) {
    x[j] = std::exp(x[j] - m);
    s += x[j];
  }
  return s;
}

// R rows of scores (row r at s + r * stride, n of them each) to exp(s - the row's max) in
// place; inv[r] = 1 / the row's sum (the softmax's unnormalised weights)
inline void softmax_rows(float* s, int64_t R, int64_t stride, int64_t n, float* inv) {
  for (int64_t r = 0; r < R; ++r) {
    float* row = s + r * stride;
    inv[r] = 1.f / exp_sum(row, n, row_max(row, n));
  }
}

#if defined(__AVX512F__)
// exp(x) for x <= 0 (scores less their row's max), 16 at a time: Cephes' expf
// (range reduction by ln 2 in two parts, a degree-6 polynomial; about 1 ulp) and a
// vscalefps for the power of two. About 5x faster than ATen's Sleef exp, which is
// made for any argument.
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));  // exp underflows to 0 below this anyway
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// 64 floats of x loaded into v[4]; returns their largest magnitude (the int8 kernels' scales)
inline float load64_absmax(const float* x, __m512 v[4]) {
  __m512 m = _mm512_setzero_ps();
  for (int c = 0; c < 4; ++c) {
    v[c] = _mm512_loadu_ps(x + 16 * c);
    m = _mm512_max_ps(m, _mm512_abs_ps(v[c]));
  }
  return _mm512_reduce_max_ps(m);
}

// The work items (window * H + head) of a cross-attention call over Bk windows of R rows:
// windows whose rows have all finished (live[bk] == 0) get zeros in out[Bk, R, H, 64] and
// no item, so the work is handed out over the live ones only.
inline std::vector<int64_t> live_heads(int64_t Bk, int64_t R, int64_t H, float* out, const uint8_t* live) {
  std::vector<int64_t> work;
  work.reserve(static_cast<size_t>(Bk * H));
  for (int64_t bk = 0; bk < Bk; ++bk) {
    if (live && !live[bk]) {
      std::fill(out + bk * R * H * 64, out + (bk + 1) * R * H * 64, 0.f);
      continue;
    }
    for (int64_t h = 0; h < H; ++h) work.push_back(bk * H + h);
  }
  return work;
}

// x[j] = exp(x[j] - m) in place, m >= every x[j]; returns the sum.
inline float exp_sum_nonpositive(float* x, int64_t n, float m) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512 acc = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
    _mm512_storeu_ps(x + j, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (j < n) {
    const __mmask16 k = __mmask16((1u << (n - j)) - 1);
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm));
    _mm512_mask_storeu_ps(x + j, k, e);
    acc = _mm512_mask_add_ps(acc, k, acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}
#endif

}  // namespace npuw

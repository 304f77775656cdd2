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

}  // namespace npuw

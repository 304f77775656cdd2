// The cpu device's attention kernel: one head of multi-head attention over all frames,
// run as timed 64-row query tiles, straight from the qkv gemm's [T, 3D] output into the
// [T, D] buffer the out projection reads.
//
// It first copies each head's K_h and V_h out of the strided qkv rows into contiguous
// buffers (timed per head: the "attention_io" events), then for each query tile
//   scores = scale * q_tile @ K_h^T
//   p      = exp(scores - rowmax)           (ATen's vectorised exp, fused with the row sum)
//   out    = (p @ V_h) / rowsum
// Two ways to do the two products:
// - AVX-512 and a head width of 64 (every Whisper size): register-blocked FMA loops over
//   K_h stored transposed ([64, T], 64 keys a row block stay in L1) and V_h ([T, 64],
//   one key's values are four 16-float registers). A small-k product like q @ K^T
//   (k = 64) is where BLAS spends most on packing; these loops need none and run about
//   twice as fast here (see benchmarks/attention_kernel.py).
// - otherwise BLAS sgemm (the one torch.mm uses), over key blocks of kv_block frames with
//   a running max and sum (kv_block <= 0: all frames in one block).
// - asked for bf16 (precision bf16) on a CPU with AVX512_BF16, a head width of 64: both
//   products as vdpbf16ps on bf16 copies, fp32 accumulation and softmax (bf16k:: below).
// Each tile's start and end are read from CLOCK_MONOTONIC, the clock behind Python's
// time.perf_counter_ns, so they sit on the recorder's time line.
// Heads (then tiles) run in parallel on torch's own intra-op (OpenMP) threads, the ones
// its gemms use, so no second pool competes with them for the cores; the GIL is released.

#include "cpu_vec.h"

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

using npuw::exp_sum;
using npuw::row_max;
using Vec = npuw::Vec;
using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                          const int*, const float*, const int*, const float*, float*, const int*);

// torch's CPU builds export the BLAS they link (MKL on x86, OpenBLAS elsewhere).
sgemm_fn blas_sgemm() {
  static const sgemm_fn fn = reinterpret_cast<sgemm_fn>(dlsym(RTLD_DEFAULT, "sgemm_"));
  return fn;
}

int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// Row-major C[m,n] = alpha * A[m,k] @ op(B) + beta * C, with B given as [n,k] (b_trans) or [k,n].
void gemm_rm(int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, bool b_trans,
             float beta, float* c, int ldc) {
  // BLAS is column-major: compute C^T[n,m] = op(B)^T[n,k] @ A^T[k,m]
  blas_sgemm()(b_trans ? "T" : "N", "N", &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

}  // namespace

bool has_blas() { return blas_sgemm() != nullptr; }

// Copies K_h and V_h out of the strided qkv rows into contiguous [T, d] buffers.
static void copy_kv(const float* base, float* k, float* v, int T, int D, int d, int head) {
  const int D3 = 3 * D;
  for (int t = 0; t < T; ++t) {
    const float* row = base + int64_t(t) * D3 + head * d;
    std::copy_n(row + D, d, k + int64_t(t) * d);
    std::copy_n(row + 2 * D, d, v + int64_t(t) * d);
  }
}

// One query tile of one head; s, m, l are scratch of tile * B, tile and tile floats.
static void attend_tile(const float* base, const float* k, const float* v, float* obase, int T, int D, int d, int head,
                        int r0, int rows, int B, float* s, float* m, float* l) {
  const int D3 = 3 * D;
  const float scale = 1.0f / std::sqrt(float(d));
  const float* q = base + int64_t(r0) * D3 + head * d;
  float* o = obase + int64_t(r0) * D + head * d;
  for (int kb = 0; kb < T; kb += B) {
    const int n = std::min(B, T - kb);
    gemm_rm(rows, n, d, scale, q, D3, k + int64_t(kb) * d, d, true, 0.0f, s, n);
    for (int r = 0; r < rows; ++r) {
      float* sr = s + int64_t(r) * n;
      const float mx = row_max(sr, n);
      const float m_new = kb == 0 ? mx : std::max(m[r], mx);
      const float sum = exp_sum(sr, n, m_new);
      if (kb == 0) {
        l[r] = sum;
      } else {  // rescale what earlier key blocks accumulated
        const float c = std::exp(m[r] - m_new);
        l[r] = l[r] * c + sum;
        float* orow = o + int64_t(r) * D;
        for (int j = 0; j < d; ++j) orow[j] *= c;
      }
      m[r] = m_new;
    }
    gemm_rm(rows, d, n, 1.0f, s, n, v + int64_t(kb) * d, d, false, kb == 0 ? 0.0f : 1.0f, o, D);
  }
  for (int r = 0; r < rows; ++r) {
    const float inv = 1.0f / l[r];
    float* orow = o + int64_t(r) * D;
    for (int j = 0; j < d; ++j) orow[j] *= inv;
  }
}

#if defined(__AVX512F__)
#include <immintrin.h>

namespace fused {

constexpr int HD = 64;    // head width: n_state / n_head for every Whisper size
constexpr int KP = 64;    // keys per packed panel of K^T
constexpr int VB = 128;   // keys per block of V (32 KB: stays in L1 while every row block uses it)

// K_h transposed and packed into panels of KP keys, kt[(t / KP) * HD * KP + c * KP + t % KP]
// (keys T..tp zero), so the q @ K^T loop reads one contiguous 16 KB panel; V_h into
// v[t * HD + c].
void copy_kv(const float* base, float* kt, float* v, int T, int tp, int D, int head) {
  const int D3 = 3 * D;
  for (int t = 0; t < T; ++t) {
    const float* row = base + int64_t(t) * D3 + head * HD;
    float* col = kt + int64_t(t / KP) * HD * KP + t % KP;
    for (int c = 0; c < HD; ++c) col[c * KP] = row[D + c];
    std::copy_n(row + 2 * D, HD, v + int64_t(t) * HD);
  }
  for (int t = T; t < tp; ++t) {
    float* col = kt + int64_t(t / KP) * HD * KP + t % KP;
    for (int c = 0; c < HD; ++c) col[c * KP] = 0.0f;
  }
}

// s[r, 0:64] = q[r, :] @ panel for R rows: R x 4 accumulators; per head dimension one
// load of four key vectors and R broadcasts.
template <int R>
inline void qk_block(const float* q, const float* panel, float* s, int lds) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < 4; ++i) acc[r][i] = _mm512_setzero_ps();
  for (int c = 0; c < HD; ++c) {
    const float* kc = panel + c * KP;
    const __m512 k0 = _mm512_loadu_ps(kc), k1 = _mm512_loadu_ps(kc + 16), k2 = _mm512_loadu_ps(kc + 32), k3 = _mm512_loadu_ps(kc + 48);
    for (int r = 0; r < R; ++r) {
      const __m512 qb = _mm512_set1_ps(q[r * HD + c]);
      acc[r][0] = _mm512_fmadd_ps(qb, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(qb, k1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(qb, k2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(qb, k3, acc[r][3]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(s + int64_t(r) * lds + 16 * i, acc[r][i]);
}

// o[r, :] (+)= p[r, k0:k1] @ v[k0:k1, :] for R rows (o: R x 64 scratch; zero when first).
template <int R>
inline void pv_block(const float* p, int ldp, const float* v, int k0, int k1, float* o, bool first) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < 4; ++i) acc[r][i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(o + r * HD + 16 * i);
  for (int k = k0; k < k1; ++k) {
    const float* vr = v + int64_t(k) * HD;
    const __m512 v0 = _mm512_loadu_ps(vr), v1 = _mm512_loadu_ps(vr + 16), v2 = _mm512_loadu_ps(vr + 32), v3 = _mm512_loadu_ps(vr + 48);
    for (int r = 0; r < R; ++r) {
      const __m512 pb = _mm512_set1_ps(p[int64_t(r) * ldp + k]);
      acc[r][0] = _mm512_fmadd_ps(pb, v0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(pb, v1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(pb, v2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(pb, v3, acc[r][3]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(o + r * HD + 16 * i, acc[r][i]);
}

// Rows in blocks of 6 (the widest that leaves registers for the loaded vectors:
// 6 x 4 accumulators + 4), then the remainder.
#define NPUW_ROW_BLOCKS(rows, CALL)          \
  do {                                        \
    int r = 0;                                \
    for (; r + 6 <= (rows); r += 6) CALL(6);  \
    switch ((rows) - r) {                     \
      case 5: CALL(5); break;                 \
      case 4: CALL(4); break;                 \
      case 3: CALL(3); break;                 \
      case 2: CALL(2); break;                 \
      case 1: CALL(1); break;                 \
      default: break;                         \
    }                                         \
  } while (0)

// One query tile (at most 64 rows) of one head over all T keys; s is scratch of
// rows * tp floats, qs and os of rows * 64. The scale 1/sqrt(64) = 1/8 is a power of two, so folding it into q
// changes no rounding.
void attend_tile(const float* base, const float* kt, const float* v, float* obase, int T, int tp, int D, int head, int r0,
                 int rows, float* s, float* qs, float* os) {
  const int D3 = 3 * D;
  const float scale = 1.0f / std::sqrt(float(HD));
  for (int r = 0; r < rows; ++r) {
    const float* q = base + int64_t(r0 + r) * D3 + head * HD;
    for (int c = 0; c < HD; ++c) qs[r * HD + c] = q[c] * scale;
  }
  for (int j = 0; j < tp; j += KP) {
    const float* panel = kt + int64_t(j) * HD;
#define QK(R) qk_block<R>(qs + r * HD, panel, s + int64_t(r) * tp + j, tp)
    NPUW_ROW_BLOCKS(rows, QK);
#undef QK
  }
  float inv[64];
  for (int r = 0; r < rows; ++r) {
    float* sr = s + int64_t(r) * tp;
    inv[r] = 1.0f / npuw::exp_sum_nonpositive(sr, T, row_max(sr, T));
  }
  for (int k0 = 0; k0 < T; k0 += VB) {
    const int k1 = std::min(T, k0 + VB);
#define PV(R) pv_block<R>(s + int64_t(r) * tp, tp, v, k0, k1, os + r * HD, k0 == 0)
    NPUW_ROW_BLOCKS(rows, PV);
#undef PV
  }
  for (int r = 0; r < rows; ++r) {
    const __m512 sc = _mm512_set1_ps(inv[r]);
    float* o = obase + int64_t(r0 + r) * D + head * HD;
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(o + 16 * i, _mm512_mul_ps(_mm512_loadu_ps(os + r * HD + 16 * i), sc));
  }
}

}  // namespace fused

bool has_fused() { return true; }
#else
bool has_fused() { return false; }
#endif

// The bf16 products (precision bf16, head width 64, CPUs with AVX512_BF16): the same tiles
// as fused:: above, with both products as vdpbf16ps (_mm512_dpbf16_ps: 32 bf16 products
// a register, summed in pairs into 16 fp32 accumulators), so half the instructions.
// - K_h and V_h are rounded to bf16 (round to nearest even) into the pair-interleaved
//   layout vdpbf16ps reads: a K panel of 64 keys holds, per pair of head dimensions
//   (c, c+1), the 64 keys' two values side by side (kp[p][t][c % 2], p = c / 2); V holds,
//   per pair of keys (k, k+1), the 64 columns' two values (vp[k / 2][c][k % 2]).
// - q is scaled by 1/8 (exact) and rounded to bf16; each row's pair (q[c], q[c+1]) is one
//   32-bit broadcast.
// - scores accumulate in fp32; the softmax is fp32 and online, over chunks of KC keys (a
//   running max and sum per row; what earlier chunks added to the output and the sum is
//   rescaled when the max grows), with the Cephes exp of fused::; the row max is taken as
//   the scores are stored. p = exp(s - max) is rounded to bf16 and the sum adds the rounded
//   values, so the weights that multiply V sum to what divides (up to fp32 rounding).
//   Chunks keep a tile's scores and p in L1/L2 (a whole row of scores for 64 rows, 390 KB,
//   did not fit beside K and V).
// Compiled where the compiler knows AVX512_BF16 (GCC >= 10, clang >= 9; a target pragma,
// so -march need not include it) and run only where cpuid says the CPU has it.
#if defined(__AVX512F__) && ((defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#define NPUW_BF16 1
#include <cpuid.h>

#include <cstring>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")
#endif

namespace bf16k {

constexpr int HD = 64;   // head width
constexpr int KP = 64;   // keys per K panel (8 KB in bf16)
constexpr int KC = 256;  // keys per chunk of the online softmax (K and V chunks: 32 KB each in bf16)

// 16 floats rounded to bf16 (nearest even), as 16 uint16 at dst.
inline void store_bf16(uint16_t* dst, __m512 x) {
  const __m256bh b = _mm512_cvtneps_pbh(x);
  std::memcpy(dst, &b, 32);
}

// bf16 bits (the low 16 of each lane) back to floats.
inline __m512 widen_bf16(__m256i b) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16)); }

// Packs K_h into panels kp[(t / KP) * HD * KP + (c / 2) * 2 * KP + (t % KP) * 2 + c % 2] and
// V_h into vp[(t / 2) * 2 * HD + c * 2 + t % 2], both bf16; the buffers come zeroed, so
// keys T..tp stay zero (a zero key's score is never read; a zero value times p = 0 adds 0).
void copy_kv(const float* base, uint16_t* kp, uint16_t* vp, int T, int D, int head) {
  const int D3 = 3 * D;
  alignas(64) uint16_t kb[HD], vb[HD];
  for (int t = 0; t < T; ++t) {
    const float* row = base + int64_t(t) * D3 + head * HD;
    for (int i = 0; i < HD; i += 16) {
      store_bf16(kb + i, _mm512_loadu_ps(row + D + i));
      store_bf16(vb + i, _mm512_loadu_ps(row + 2 * D + i));
    }
    uint16_t* kcol = kp + int64_t(t / KP) * HD * KP + (t % KP) * 2;
    for (int p = 0; p < HD / 2; ++p) std::memcpy(kcol + p * 2 * KP, kb + 2 * p, 4);
    uint16_t* vrow = vp + int64_t(t / 2) * 2 * HD + t % 2;
    for (int c = 0; c < HD; ++c) vrow[2 * c] = vb[c];
  }
}

inline __m512bh as_bh(__m512i x) { return (__m512bh)x; }

// One bf16 pair (two uint16 at x) broadcast to all 16 lanes (memcpy: no type punning).
inline __m512bh pair_bcast(const uint16_t* x) {
  int v;
  std::memcpy(&v, x, 4);
  return as_bh(_mm512_set1_epi32(v));
}

// s[r, 0:64] = q[r, :] @ panel for R rows; q: R rows of 64 bf16. mx[r] (16 lanes) takes the
// max of the row's scores at keys where live (the panel's keys below T), so the softmax
// needs no pass of its own for the row max.
template <int R>
inline void qk_block(const uint16_t* q, const uint16_t* panel, float* s, int lds, __m512* mx, const __mmask16* live) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < 4; ++i) acc[r][i] = _mm512_setzero_ps();
  for (int p = 0; p < HD / 2; ++p) {
    const uint16_t* kc = panel + p * 2 * KP;
    const __m512bh k0 = as_bh(_mm512_loadu_si512(kc)), k1 = as_bh(_mm512_loadu_si512(kc + 32)),
                   k2 = as_bh(_mm512_loadu_si512(kc + 64)), k3 = as_bh(_mm512_loadu_si512(kc + 96));
    for (int r = 0; r < R; ++r) {
      const __m512bh qb = pair_bcast(q + r * HD + 2 * p);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], qb, k0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], qb, k1);
      acc[r][2] = _mm512_dpbf16_ps(acc[r][2], qb, k2);
      acc[r][3] = _mm512_dpbf16_ps(acc[r][3], qb, k3);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < 4; ++i) {
      _mm512_storeu_ps(s + int64_t(r) * lds + 16 * i, acc[r][i]);
      mx[r] = _mm512_mask_max_ps(mx[r], live[i], mx[r], acc[r][i]);
    }
}

// o[r, :] (+)= p[r, 2*p0:2*p1] @ v[2*p0:2*p1, :] for R rows, over key pairs p0..p1; p: bf16
// rows ldp apart; o: R x 64 scratch (ignored when first, else first scaled by c[r]).
template <int R>
inline void pv_block(const uint16_t* p, int ldp, const uint16_t* vp, int p0, int p1, float* o, bool first, const float* c) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r) {
    const __m512 cr = first ? _mm512_setzero_ps() : _mm512_set1_ps(c[r]);
    for (int i = 0; i < 4; ++i) acc[r][i] = first ? cr : _mm512_mul_ps(_mm512_loadu_ps(o + r * HD + 16 * i), cr);
  }
  for (int k = p0; k < p1; ++k) {
    const uint16_t* vr = vp + int64_t(k) * 2 * HD;
    const __m512bh v0 = as_bh(_mm512_loadu_si512(vr)), v1 = as_bh(_mm512_loadu_si512(vr + 32)),
                   v2 = as_bh(_mm512_loadu_si512(vr + 64)), v3 = as_bh(_mm512_loadu_si512(vr + 96));
    for (int r = 0; r < R; ++r) {
      const __m512bh pb = pair_bcast(p + int64_t(r) * ldp + 2 * k);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], pb, v0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], pb, v1);
      acc[r][2] = _mm512_dpbf16_ps(acc[r][2], pb, v2);
      acc[r][3] = _mm512_dpbf16_ps(acc[r][3], pb, v3);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(o + r * HD + 16 * i, acc[r][i]);
}

// p[j] = bf16(exp(s[j] - m)) for j < n, p[j] = 0 for n <= j < round_up(n, 16), m >= every
// s[j]; returns the sum of the rounded values.
inline __m512 exp_to_bf16_16(const float* s, uint16_t* p, __m512 vm, __mmask16 k) {
  const __m512 e = _mm512_maskz_mov_ps(k, npuw::exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s), vm)));
  const __m256bh b = _mm512_cvtneps_pbh(e);
  __m256i bi;
  std::memcpy(&bi, &b, 32);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), bi);
  return widen_bf16(bi);
}

inline float exp_to_bf16(const float* s, uint16_t* p, int n, float m) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int j = 0;
  for (; j + 32 <= n; j += 32) {
    acc0 = _mm512_add_ps(acc0, exp_to_bf16_16(s + j, p + j, vm, 0xFFFF));
    acc1 = _mm512_add_ps(acc1, exp_to_bf16_16(s + j + 16, p + j + 16, vm, 0xFFFF));
  }
  for (; j < n; j += 16) acc0 = _mm512_add_ps(acc0, exp_to_bf16_16(s + j, p + j, vm, n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1)));
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// One query tile (at most 64 rows) of one head over all T keys; s: rows * KC floats of
// scratch, p: rows * KC bf16, qs: rows * 64 bf16, os: rows * 64 floats.
void attend_tile(const float* base, const uint16_t* kp, const uint16_t* vp, float* obase, int T, int D, int head, int r0, int rows,
                 float* s, uint16_t* p, uint16_t* qs, float* os) {
  const int D3 = 3 * D;
  const __m512 scale = _mm512_set1_ps(1.0f / std::sqrt(float(HD)));  // 1/8: exact
  for (int r = 0; r < rows; ++r) {
    const float* q = base + int64_t(r0 + r) * D3 + head * HD;
    for (int c = 0; c < HD; c += 16) store_bf16(qs + r * HD + c, _mm512_mul_ps(_mm512_loadu_ps(q + c), scale));
  }
  float m[64], l[64], c[64];
  for (int k0 = 0; k0 < T; k0 += KC) {
    const int kn = std::min(KC, T - k0);  // keys in this chunk
    __m512 mx[64];
    for (int r = 0; r < rows; ++r) mx[r] = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < kn; j += KP) {
      const uint16_t* panel = kp + int64_t(k0 + j) * HD;
      __mmask16 live[4];
      for (int i = 0; i < 4; ++i) {
        const int n = std::clamp(kn - j - 16 * i, 0, 16);
        live[i] = n == 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
      }
#define QK(R) qk_block<R>(qs + r * HD, panel, s + int64_t(r) * KC + j, KC, mx + r, live)
      NPUW_ROW_BLOCKS(rows, QK);
#undef QK
    }
    for (int r = 0; r < rows; ++r) {
      const float mb = _mm512_reduce_max_ps(mx[r]);
      const float m_new = k0 == 0 ? mb : std::max(m[r], mb);
      const float sum = exp_to_bf16(s + int64_t(r) * KC, p + int64_t(r) * KC, kn, m_new);
      if (k0 == 0) {
        l[r] = sum;
      } else {  // what earlier chunks added, rescaled to this max
        c[r] = std::exp(m[r] - m_new);
        l[r] = l[r] * c[r] + sum;
      }
      m[r] = m_new;
    }
    const int pairs = (kn + 1) / 2;  // an odd T's last pair has p = 0 (and v = 0) for key T
    const uint16_t* vc = vp + int64_t(k0) * HD;
#define PV(R) pv_block<R>(p + int64_t(r) * KC, KC, vc, 0, pairs, os + r * HD, k0 == 0, c + r)
    NPUW_ROW_BLOCKS(rows, PV);
#undef PV
  }
  for (int r = 0; r < rows; ++r) {
    const __m512 sc = _mm512_set1_ps(1.0f / l[r]);
    float* o = obase + int64_t(r0 + r) * D + head * HD;
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(o + 16 * i, _mm512_mul_ps(_mm512_loadu_ps(os + r * HD + 16 * i), sc));
  }
}

}  // namespace bf16k

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// AVX512_BF16: cpuid leaf 7, sub-leaf 1, eax bit 5 (and AVX512F, which this build assumes).
bool cpu_has_avx512_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a >> 5) & 1u;
}

bool has_bf16() {
  static const bool yes = cpu_has_avx512_bf16();
  return yes;
}
#else
bool has_bf16() { return false; }
#endif

// The two timed parallel phases both paths share, on torch's threads: the per-head K/V
// copies (times row 0 of the head), then all (head, query tile) work items (row 1 + tile),
// so machines with more cores than heads keep them busy. Scratch is made once per thread.
template <typename Copy, typename Scratch, typename Attend>
void run_timed(int64_t n_head, int n_tiles, int tile, int T, int64_t* tb, Copy copy, Scratch make_scratch, Attend attend) {
  const int64_t head_rows = 2 * (1 + n_tiles);
  at::parallel_for(0, n_head, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      tb[h * head_rows] = monotonic_ns();
      copy(h);
      tb[h * head_rows + 1] = monotonic_ns();
    }
  });
  at::parallel_for(0, n_head * n_tiles, 1, [&](int64_t i0, int64_t i1) {
    auto scratch = make_scratch();
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t h = item / n_tiles, ti = item % n_tiles;
      const int64_t t0 = monotonic_ns();
      const int r0 = ti * tile;
      attend(h, r0, std::min<int>(tile, T - r0), scratch);
      int64_t* row = tb + h * head_rows + 2 * (1 + ti);
      row[0] = t0;
      row[1] = monotonic_ns();
    }
  });
}

// qkv: [T, 3D] float32 contiguous; out: [T, D] float32 contiguous; times: int64
// [H, 1 + n_tiles, 2]: per head, row 0 the K/V copy and row 1 + i query tile i (start, end).
// bf16: the bf16 products (bf16k::) where they apply (a head width of 64, this CPU has
// AVX512_BF16, use_fused), else the fp32 paths as without it.
void attention(const at::Tensor& qkv, int64_t n_head, int64_t tile, int64_t kv_block, at::Tensor out, at::Tensor times, bool use_fused = true,
               bool bf16 = false) {
  TORCH_CHECK(qkv.dim() == 2 && qkv.scalar_type() == at::kFloat && qkv.is_contiguous(), "qkv must be contiguous float32 [T, 3D]");
  TORCH_CHECK(out.dim() == 2 && out.scalar_type() == at::kFloat && out.is_contiguous(), "out must be contiguous float32 [T, D]");
  TORCH_CHECK(n_head > 0 && tile > 0, "n_head and tile must be positive");
  const int T = qkv.size(0), D3 = qkv.size(1), D = D3 / 3;
  TORCH_CHECK(D3 % 3 == 0 && D % n_head == 0, "qkv's width must be 3 * n_head * d");
  TORCH_CHECK(out.size(0) == T && out.size(1) == D, "out must be [T, D]");
  const int n_tiles = (T + tile - 1) / tile;
  TORCH_CHECK(times.scalar_type() == at::kLong && times.is_contiguous() && times.numel() == n_head * 2 * (1 + n_tiles),
              "times must be contiguous int64 [H, 1 + n_tiles, 2]");
  const int B = std::min<int>(kv_block > 0 ? kv_block : T, T);
  const int d = D / n_head;
  const float* base = qkv.data_ptr<float>();
  float* obase = out.data_ptr<float>();
  int64_t* tb = times.data_ptr<int64_t>();
#if defined(NPUW_BF16)
  if (bf16 && use_fused && has_bf16() && d == bf16k::HD && B == T && tile <= 64) {
    const int tp = (T + bf16k::KP - 1) / bf16k::KP * bf16k::KP;
    std::vector<uint16_t> kv(size_t(2) * n_head * tp * d);  // zeroed: the padding keys
    const auto kp_of = [&](int64_t h) { return kv.data() + h * tp * d; };
    const auto vp_of = [&](int64_t h) { return kv.data() + (n_head + h) * tp * d; };
    struct Scratch { std::vector<float> s, os; std::vector<uint16_t> p, qs; };
    const size_t chunk = size_t(tile) * bf16k::KC;
    run_timed(
        n_head, n_tiles, tile, T, tb, [&](int64_t h) { bf16k::copy_kv(base, kp_of(h), vp_of(h), T, D, h); },
        [&] { return Scratch{std::vector<float>(chunk), std::vector<float>(size_t(tile) * d), std::vector<uint16_t>(chunk), std::vector<uint16_t>(size_t(tile) * d)}; },
        [&](int64_t h, int r0, int rows, Scratch& sc) {
          bf16k::attend_tile(base, kp_of(h), vp_of(h), obase, T, D, h, r0, rows, sc.s.data(), sc.p.data(), sc.qs.data(), sc.os.data());
        });
    return;
  }
#endif
#if defined(__AVX512F__)
  if (use_fused && d == fused::HD && B == T && tile <= 64) {
    const int tp = (T + fused::KP - 1) / fused::KP * fused::KP;
    std::vector<float> kv(size_t(2) * n_head * tp * d);
    const auto kt_of = [&](int64_t h) { return kv.data() + h * tp * d; };
    const auto v_of = [&](int64_t h) { return kv.data() + (n_head + h) * tp * d; };
    struct Scratch { std::vector<float> s, qs, os; };
    run_timed(
        n_head, n_tiles, tile, T, tb, [&](int64_t h) { fused::copy_kv(base, kt_of(h), v_of(h), T, tp, D, h); },
        [&] { return Scratch{std::vector<float>(size_t(tile) * tp), std::vector<float>(size_t(tile) * d), std::vector<float>(size_t(tile) * d)}; },
        [&](int64_t h, int r0, int rows, Scratch& sc) {
          fused::attend_tile(base, kt_of(h), v_of(h), obase, T, tp, D, h, r0, rows, sc.s.data(), sc.qs.data(), sc.os.data());
        });
    return;
  }
#endif
  TORCH_CHECK(has_blas(), "no BLAS sgemm_ in this torch build");
  std::vector<float> kv(size_t(2) * n_head * T * d);
  const auto k_of = [&](int64_t h) { return kv.data() + h * T * d; };
  const auto v_of = [&](int64_t h) { return kv.data() + (n_head + h) * T * d; };
  struct Scratch { std::vector<float> s, m, l; };
  run_timed(
      n_head, n_tiles, tile, T, tb, [&](int64_t h) { copy_kv(base, k_of(h), v_of(h), T, D, d, h); },
      [&] { return Scratch{std::vector<float>(size_t(tile) * B), std::vector<float>(tile), std::vector<float>(tile)}; },
      [&](int64_t h, int r0, int rows, Scratch& sc) {
        attend_tile(base, k_of(h), v_of(h), obase, T, D, d, h, r0, rows, B, sc.s.data(), sc.m.data(), sc.l.data());
      });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("has_blas", &has_blas, "True when torch exports the BLAS sgemm_ this kernel calls");
  m.def("has_fused", &has_fused, "True when built with the AVX-512 loops (used for a head width of 64)");
  m.def("has_bf16", &has_bf16, "True when built with the bf16 products (AVX512_BF16) and this CPU has them");
  m.def("attention", &attention, "multi-head attention as timed (head, query tile) work items, from packed qkv",
        py::arg("qkv"), py::arg("n_head"), py::arg("tile"), py::arg("kv_block"), py::arg("out"), py::arg("times"),
        py::arg("use_fused") = true, py::arg("bf16") = false, py::call_guard<py::gil_scoped_release>());
}

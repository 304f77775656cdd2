// mm_bf16.cc -- AIE2 (npu1) core kernels for kernels/gemm/gemm.py
//
// Adapted from mlir-aie aie_kernels/aie2/mm.cc (Apache-2.0 WITH LLVM-exception, (c) AMD):
// the vectorised matmul over r x s x t = 4 x 8 x 4 bf16 MAC blocks (aie::mmul), 2x2 unrolled,
// accumulating into an f32 C tile that stays resident in L1 across the K loop.
// Added: an epilogue that adds the bias (f32) and, optionally, GELU (tanh form, f32) in place.
//
// Numerics (mirrored by npu_whisper_app/devices/reference.py: gemm_kernel):
//   A, B are bf16; products are exact in the f32 accumulator; each call adds one 64-deep
//   K step to C (loaded from / stored to L1 as f32); the epilogue runs once after the last step.

#define NOCPP
#include <aie_api/aie.hpp>
#include <stdint.h>

#ifndef DIM_M
#define DIM_M 64
#endif
#ifndef DIM_K
#define DIM_K 64
#endif
#ifndef DIM_N
#define DIM_N 32
#endif

static constexpr unsigned r = 4, s = 8, t = 4;

extern "C" {

void zero_f32(float *__restrict c) {
  const aie::vector<float, 16> zeros = aie::zeros<float, 16>();
  for (int i = 0; i < DIM_M * DIM_N; i += 16)
    chess_prepare_for_pipelining aie::store_v(c + i, zeros);
}

// C[m x n] += A[m x k] * B[k x n]; A, B, C in the blocked r x s / s x t / r x t layouts
// produced by the memtile DMAs (dims_to_stream in gemm.py).
void matmul_bf16_f32(const bfloat16 *__restrict pA, const bfloat16 *__restrict pB, float *__restrict pC) {
  using MMUL = aie::mmul<r, s, t, bfloat16, bfloat16, accfloat>;
  constexpr unsigned colA = DIM_K / s, colB = DIM_N / t;
  for (unsigned z = 0; z < DIM_M / r; z += 2)
    chess_loop_range(2, ) {
      float *__restrict pC1 = pC + (z * colB) * MMUL::size_C;
      float *__restrict pC2 = pC + ((z + 1) * colB) * MMUL::size_C;
      for (unsigned j = 0; j < colB; j += 2)
        chess_prepare_for_pipelining chess_loop_range(2, ) {
          const bfloat16 *__restrict pA1 = pA + (z * colA) * MMUL::size_A;
          const bfloat16 *__restrict pA2 = pA + ((z + 1) * colA) * MMUL::size_A;
          const bfloat16 *__restrict pB1 = pB + j * MMUL::size_B;
          const bfloat16 *__restrict pB2 = pB + (j + 1) * MMUL::size_B;
          MMUL C00(aie::load_v<MMUL::size_C>(pC1));
          MMUL C01(aie::load_v<MMUL::size_C>(pC1 + MMUL::size_C));
          MMUL C10(aie::load_v<MMUL::size_C>(pC2));
          MMUL C11(aie::load_v<MMUL::size_C>(pC2 + MMUL::size_C));
          for (unsigned i = 0; i < colA; ++i)
            chess_flatten_loop {
              auto A0 = aie::load_v<MMUL::size_A>(pA1); pA1 += MMUL::size_A;
              auto A1 = aie::load_v<MMUL::size_A>(pA2); pA2 += MMUL::size_A;
              auto B0 = aie::load_v<MMUL::size_B>(pB1); pB1 += MMUL::size_B * colB;
              auto B1 = aie::load_v<MMUL::size_B>(pB2); pB2 += MMUL::size_B * colB;
              C00.mac(A0, B0);
              C01.mac(A0, B1);
              C10.mac(A1, B0);
              C11.mac(A1, B1);
            }
          aie::store_v(pC1, C00.template to_vector<float>()); pC1 += MMUL::size_C;
          aie::store_v(pC1, C01.template to_vector<float>()); pC1 += MMUL::size_C;
          aie::store_v(pC2, C10.template to_vector<float>()); pC2 += MMUL::size_C;
          aie::store_v(pC2, C11.template to_vector<float>()); pC2 += MMUL::size_C;
        }
    }
}

// tanh via exp: tanh(u) = 1 - 2 / (exp(2u) + 1), f32 (aie::exp2 on bf16 would lose accuracy;
// this scalar-vector mix is slow but exact enough; it runs once per output tile).
static inline float gelu_tanh(float x) {
  const float c = 0.7978845608028654f;
  float u = c * (x + 0.044715f * x * x * x);
  float e = __builtin_expf(2.0f * u);
  return 0.5f * x * (1.0f + (1.0f - 2.0f / (e + 1.0f)));
}

// C (r x t blocked, row-major blocks) += bias per column; then GELU when gelu != 0.
void matmul_epilogue_bf16_f32(float *__restrict pC, const float *__restrict bias, int32_t gelu) {
  for (unsigned bi = 0; bi < DIM_M / r; ++bi)
    for (unsigned bj = 0; bj < DIM_N / t; ++bj) {
      float *blk = pC + (bi * (DIM_N / t) + bj) * (r * t);
      for (unsigned e = 0; e < r * t; ++e) {
        float v = blk[e] + bias[bj * t + (e % t)];
        blk[e] = gelu ? gelu_tanh(v) : v;
      }
    }
}

} // extern "C"

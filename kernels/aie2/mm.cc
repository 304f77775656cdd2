// mm.cc -- AIE2 (npu1) / AIE2P (npu2) core kernels for kernels/gemm/gemm.py. NOT COMPILED HERE
// (no Peano on the machines this was written on; see kernels/README.md).
//
// matmul_bf16_f32: mlir-aie aie_kernels/aie2/mm.cc's bf16 micro-kernel (Apache-2.0 WITH
// LLVM-exception, (c) AMD): aie::mmul<4, 8, 4, bfloat16, bfloat16, accfloat>, 2 x 2 unrolled,
// C (f32) resident in L1 across the K loop; A, B, C in the blocked layouts the memtile DMAs make.
// epilogue_bias_gelu_f32: vectorised, 16 lanes: C += bias; GELU (tanh form) as
// 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)) with aie::exp2 and aie::inv (the approach of mlir-aie's
// gelu / silu kernels); no scalar float code. The bias comes in the B stream's epilogue block:
// its first 2n bf16 slots hold n f32 values.
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
using MMUL = aie::mmul<r, s, t, bfloat16, bfloat16, accfloat>;

extern "C" {

void zero_f32(float *__restrict c) {
  const aie::vector<float, 16> z = aie::zeros<float, 16>();
  for (int i = 0; i < DIM_M * DIM_N; i += 16)
    chess_prepare_for_pipelining aie::store_v(c + i, z);
}

void matmul_bf16_f32(const bfloat16 *__restrict pA, const bfloat16 *__restrict pB, float *__restrict pC) {
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
          MMUL C00(aie::load_v<MMUL::size_C>(pC1)), C01(aie::load_v<MMUL::size_C>(pC1 + MMUL::size_C));
          MMUL C10(aie::load_v<MMUL::size_C>(pC2)), C11(aie::load_v<MMUL::size_C>(pC2 + MMUL::size_C));
          for (unsigned i = 0; i < colA; ++i)
            chess_flatten_loop {
              auto A0 = aie::load_v<MMUL::size_A>(pA1); pA1 += MMUL::size_A;
              auto A1 = aie::load_v<MMUL::size_A>(pA2); pA2 += MMUL::size_A;
              auto B0 = aie::load_v<MMUL::size_B>(pB1); pB1 += MMUL::size_B * colB;
              auto B1 = aie::load_v<MMUL::size_B>(pB2); pB2 += MMUL::size_B * colB;
              C00.mac(A0, B0); C01.mac(A0, B1); C10.mac(A1, B0); C11.mac(A1, B1);
            }
          aie::store_v(pC1, C00.template to_vector<float>()); pC1 += MMUL::size_C;
          aie::store_v(pC1, C01.template to_vector<float>()); pC1 += MMUL::size_C;
          aie::store_v(pC2, C10.template to_vector<float>()); pC2 += MMUL::size_C;
          aie::store_v(pC2, C11.template to_vector<float>()); pC2 += MMUL::size_C;
        }
    }
}

// C is r x t blocked; one 16-lane vector is one 4 x 4 block, lane e -> column bj * t + e % t.
void epilogue_bias_gelu_f32(float *__restrict pC, const bfloat16 *__restrict epi, int32_t gelu) {
  const float *bias = reinterpret_cast<const float *>(epi);
  const float k2 = -2.0f * 0.7978845608028654f * 1.4426950408889634f;  // -2 sqrt(2/pi) log2(e)
  for (unsigned bj = 0; bj < DIM_N / t; ++bj) {
    aie::vector<float, 4> b4 = aie::load_v<4>(bias + bj * t);
    aie::vector<float, 16> b16 = aie::concat(b4, b4, b4, b4);
    for (unsigned bi = 0; bi < DIM_M / r; ++bi)
      chess_prepare_for_pipelining {
        float *blk = pC + (bi * (DIM_N / t) + bj) * (r * t);
        aie::vector<float, 16> x = aie::add(aie::load_v<16>(blk), b16);
        if (gelu) {
          aie::vector<float, 16> x3 = aie::mul(aie::mul(x, x).to_vector<float>(), x).to_vector<float>();
          aie::vector<float, 16> u = aie::add(x, aie::mul(x3, 0.044715f).to_vector<float>());
          aie::vector<bfloat16, 16> e = aie::exp2<bfloat16>(aie::mul(u, k2).to_vector<float>());  // exp(-2u)
          x = aie::mul(x, aie::inv(aie::add(aie::to_float(e), 1.0f))).to_vector<float>();
        }
        aie::store_v(blk, x);
      }
  }
}

}  // extern "C"

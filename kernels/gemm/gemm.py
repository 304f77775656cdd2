# gemm.py -*- Python -*-  IRON design: C[M,N] (f32) = A[M,K] (bf16) @ B[K,N] (bf16) + bias[N] (f32), optional GELU.
#
# Adapted from mlir-aie programming_examples/basic/matrix_multiplication/whole_array/aie2_iron.py
# (Apache-2.0 WITH LLVM-exception, (c) Advanced Micro Devices, Inc.): the same 4x4 whole-array
# dataflow (A broadcast along columns and split along rows, B forwarded per column, C joined per
# column in the memtile). Changes for npu-whisper:
#   * B arrives pre-tiled from the host as [N/n][K/k][k][n] (each core's k x n block is one
#     contiguous burst), so the shim DMA for B is a plain linear walk per column;
#   * a bias vector (f32, one n-slice per core column) and a fused bias(+GELU) epilogue
#     (`matmul_epilogue_bf16_f32`) applied on the f32 accumulator after the last K step;
#   * f32 output (the accumulator is never rounded to bf16 between K steps).
# Sizes are baked in (the runtime sequence is part of the instruction stream): the Makefile
# builds one xclbin + insts.bin per (M, K, N, gelu) listed in the manifest.
import argparse

import numpy as np
from ml_dtypes import bfloat16

from aie.helpers.dialects.ext.scf import _for as range_
from aie.helpers.taplib import TensorTiler2D
from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker
from aie.iron.placers import SequentialPlacer
from aie.iron.device import NPU1Col4, Tile

N_ROWS, N_COLS = 4, 4  # npu1: 4 rows x 4 columns of compute tiles


def gemm(M, K, N, m, k, n, gelu):
    assert M % (m * N_ROWS) == 0 and K % k == 0 and N % (n * N_COLS) == 0
    assert m % 4 == 0 and k % 8 == 0 and n % 4 == 0  # bf16 MAC shape r x s x t = 4 x 8 x 4
    r, s, t = 4, 8, 4
    tiles_per_core = (M // m) * (N // n) // (N_ROWS * N_COLS)

    A_ty = np.ndarray[(M * K,), np.dtype[bfloat16]]
    B_ty = np.ndarray[(K * N,), np.dtype[bfloat16]]  # pre-tiled [N/n][K/k][k][n]
    bias_ty = np.ndarray[(N,), np.dtype[np.float32]]
    C_ty = np.ndarray[(M * N,), np.dtype[np.float32]]
    A_l2_ty = np.ndarray[(m * k,), np.dtype[bfloat16]]
    B_l2_ty = np.ndarray[(k * n,), np.dtype[bfloat16]]
    C_l2_ty = np.ndarray[(m * n * N_ROWS,), np.dtype[np.float32]]
    A_l1_ty = np.ndarray[(m, k), np.dtype[bfloat16]]
    B_l1_ty = np.ndarray[(k, n), np.dtype[bfloat16]]
    C_l1_ty = np.ndarray[(m, n), np.dtype[np.float32]]
    bias_l1_ty = np.ndarray[(n,), np.dtype[np.float32]]

    obj = f"mm_bf16_{m}x{k}x{n}.o"
    zero = Kernel("zero_f32", obj, [C_l1_ty])
    matmul = Kernel("matmul_bf16_f32", obj, [A_l1_ty, B_l1_ty, C_l1_ty])
    epilogue = Kernel("matmul_epilogue_bf16_f32", obj, [C_l1_ty, bias_l1_ty, np.int32])

    A_l3l2, A_l2l1, B_l3l2, B_l2l1, C_l2l3 = [], [None] * N_ROWS, [], [], []
    C_l1l2 = [[None] * N_COLS for _ in range(N_ROWS)]
    bias_fifos = []
    for col in range(N_COLS):
        a = ObjectFifo(A_l2_ty, name=f"A_L3L2_{col}", depth=2)
        A_l3l2.append(a)
        # one shim per row of cores (N_ROWS == N_COLS): row `col` gets this column's A stream,
        # reordered into the r x s MAC layout on the way to L1
        A_l2l1[col] = a.cons().forward(
            obj_type=A_l1_ty, name=f"A_L2L1_{col}", placement=Tile(col, 1),
            dims_to_stream=[(m // r, r * k), (k // s, s), (r, k), (s, 1)],
        )
        b = ObjectFifo(B_l2_ty, name=f"B_L3L2_{col}", depth=2)
        B_l3l2.append(b)
        B_l2l1.append(b.cons().forward(
            obj_type=B_l1_ty, name=f"B_L2L1_{col}", placement=Tile(col, 1),
            dims_to_stream=[(k // s, s * n), (n // t, t), (s, n), (t, 1)],
        ))
        bias_fifos.append(ObjectFifo(bias_l1_ty, name=f"bias_{col}", depth=2))
        c = ObjectFifo(C_l2_ty, name=f"C_L2L3_{col}", depth=2,
                       dims_to_stream=[(m // r, r * n), (r, t), (n // t, r * t), (t, 1)])
        C_l2l3.append(c)
        joined = c.prod().join([m * n * i for i in range(N_ROWS)], obj_types=[C_l1_ty] * N_ROWS,
                               names=[f"C_L1L2_{col}_{row}" for row in range(N_ROWS)],
                               depths=[2] * N_ROWS, placement=Tile(col, 1))
        for row in range(N_ROWS):
            C_l1l2[row][col] = joined[row]

    def core_fn(in_a, in_b, in_bias, out_c, zero, matmul, epilogue):
        for _ in range_(tiles_per_core) if tiles_per_core > 1 else range(1):
            c = out_c.acquire(1)
            zero(c)
            for _ in range_(K // k):  # K in ascending 64-deep steps, f32 accumulator stays in L1
                a = in_a.acquire(1)
                b = in_b.acquire(1)
                matmul(a, b, c)
                in_a.release(1)
                in_b.release(1)
            bias = in_bias.acquire(1)
            epilogue(c, bias, 1 if gelu else 0)  # + bias, then GELU (tanh form) on f32
            in_bias.release(1)
            out_c.release(1)

    workers = []
    for row in range(N_ROWS):
        for col in range(N_COLS):
            workers.append(Worker(core_fn, [A_l2l1[row].cons(), B_l2l1[col].cons(), bias_fifos[col].cons(),
                                            C_l1l2[row][col].prod(), zero, matmul, epilogue],
                                  placement=Tile(col, 2 + row)))

    # Transfer patterns (cf. whole_array): A row-blocks repeated for each of this column's
    # N tiles; B column j of tiles = contiguous K*n slab (pre-tiled); C per (m*rows, n) block.
    A_taps = TensorTiler2D.group_tiler((M, K), (m, k), (1, K // k), pattern_repeat=N // n // N_COLS)
    C_taps = TensorTiler2D.simple_tiler((M, N), (m * N_ROWS, n))

    rt = Runtime()
    with rt.sequence(A_ty, B_ty, bias_ty, C_ty) as (A, B, BIAS, C):
        rt.start(*workers)
        tg = rt.task_group()
        for rb in range(M // (m * N_ROWS)):
            for col in range(N_COLS):
                for nb in range(col, N // n, N_COLS):
                    rt.fill(B_l3l2[col].prod(), B, offset=nb * K * n, sizes=[1, 1, 1, K * n], task_group=tg,
                            placement=Tile(col, 0))
                    rt.fill(bias_fifos[col].prod(), BIAS, offset=nb * n, sizes=[1, 1, 1, n], task_group=tg,
                            placement=Tile(col, 0))
                    rt.drain(C_l2l3[col].cons(), C, tap=C_taps[rb * (N // n) + nb], wait=True, task_group=tg,
                             placement=Tile(col, 0))
                # A rows of this row-block, one m-row slice per core row, from shim `row`
                for row in range(N_ROWS):
                    rt.fill(A_l3l2[row].prod(), A, tap=A_taps[rb * N_ROWS + row], task_group=tg,
                            placement=Tile(row, 0))
            rt.finish_task_group(tg)
            tg = rt.task_group()
        rt.finish_task_group(tg)
    return Program(NPU1Col4(), rt).resolve_program(SequentialPlacer())


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="bf16 gemm (+bias, +GELU) over the whole npu1 array")
    p.add_argument("-M", type=int, required=True)
    p.add_argument("-K", type=int, required=True)
    p.add_argument("-N", type=int, required=True)
    p.add_argument("-m", type=int, default=64)
    p.add_argument("-k", type=int, default=64)
    p.add_argument("-n", type=int, default=32)
    p.add_argument("--gelu", action="store_true")
    a = p.parse_args()
    print(gemm(a.M, a.K, a.N, a.m, a.k, a.n, a.gelu))

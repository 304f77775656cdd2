# gemm.py -*- Python -*-  IRON design: C[M,N] (f32) = A[M,K] (bf16) @ B[K,N] (bf16) + bias, optional GELU.
#
# The dataflow is mlir-aie's programming_examples/basic/matrix_multiplication/whole_array
# (aie2_iron.py, Apache-2.0 WITH LLVM-exception, (c) AMD) on the whole npu1 array: A is split
# per core row in the memtile of column `row` and broadcast along that row, B is forwarded per
# column and broadcast down it, C is joined per column; tiles m x k x n = 64 x 64 x 32, the
# micro-kernel is mm.cc's aie::mmul<4, 8, 4> (bf16 -> f32).
# Changes for npu-whisper, each within the 2 + 2 DMA channels of a core:
#   * the bias rides in the B stream: the host pre-tiles B as [N/n][K/k + 1][k][n] and the
#     extra (k x n) block of each column slab carries that slab's n bias values (f32) in the
#     bf16 slots that become the FIRST 2n of the core's L1 buffer after B's memtile
#     dims_to_stream (not the block's first 2n; the host computes them from the manifest's
#     recorded dims); the core's epilogue reads it after the last K step. No third input.
#   * one xclbin for every gemm shape of a model: the core loop counts (output tiles per core,
#     K steps) and the GELU flag are runtime parameters (GlobalBuffer use_write_rtp) written by
#     the instruction stream, which is built per shape (the runtime sequence holds the sizes).
#   * transfers in ping-pong task groups of two row blocks (whole_array's tb_max_n_rows idea),
#     so a shim never has more than 6 tasks in flight (16 buffer descriptors per shim tile).
import argparse

import numpy as np
from aie.helpers.dialects.ext.scf import _for as range_
from aie.helpers.taplib import TensorAccessPattern
from aie.iron import GlobalBuffer, Kernel, ObjectFifo, Program, Runtime, Worker, WorkerRuntimeBarrier
from aie.iron.device import NPU2, NPU1Col4, Tile
from aie.iron.placers import SequentialPlacer
from ml_dtypes import bfloat16

ROWS, COLS = 4, 4
m, k, n = 64, 64, 32
r, s, t = 4, 8, 4  # aie::mmul shape for bf16 on AIE2 (mm.cc)
RTP_WORDS = 4  # [output tiles per core, K steps, gelu, 0]


def design(M: int, K: int, N: int, gelu: bool = False, device: str = "npu1"):
    assert M % (m * ROWS) == 0 and K % k == 0 and N % (n * COLS) == 0
    kb = K // k + 1  # K blocks per column slab of B, + the epilogue (bias) block
    A_ty = np.ndarray[(M * K,), np.dtype[bfloat16]]
    B_ty = np.ndarray[(N // n * kb * k * n,), np.dtype[bfloat16]]
    C_ty = np.ndarray[(M * N,), np.dtype[np.float32]]
    A_l2 = np.ndarray[(m * k,), np.dtype[bfloat16]]
    B_l2 = np.ndarray[(k * n,), np.dtype[bfloat16]]
    C_l2 = np.ndarray[(m * n * ROWS,), np.dtype[np.float32]]
    A_l1 = np.ndarray[(m, k), np.dtype[bfloat16]]
    B_l1 = np.ndarray[(k, n), np.dtype[bfloat16]]
    C_l1 = np.ndarray[(m, n), np.dtype[np.float32]]
    rtp_ty = np.ndarray[(RTP_WORDS,), np.dtype[np.int32]]

    obj = f"mm_{m}x{k}x{n}.o"
    zero = Kernel("zero_f32", obj, [C_l1])
    matmul = Kernel("matmul_bf16_f32", obj, [A_l1, B_l1, C_l1])
    epilogue = Kernel("epilogue_bias_gelu_f32", obj, [C_l1, B_l1, np.int32])

    A_l3l2, A_l2l1, B_l3l2, B_l2l1, C_l2l3 = [], [None] * ROWS, [], [], []
    C_l1l2 = [[None] * COLS for _ in range(ROWS)]
    for col in range(COLS):
        a = ObjectFifo(A_l2, name=f"A_L3L2_{col}", depth=2)
        A_l3l2.append(a)
        A_l2l1[col] = a.cons().split([0], obj_types=[A_l1], names=[f"A_L2L1_{col}"], placement=Tile(col, 1),
                                     dims_to_stream=[[(m // r, r * k), (k // s, s), (r, k), (s, 1)]])[0]
        b = ObjectFifo(B_l2, name=f"B_L3L2_{col}", depth=2)
        B_l3l2.append(b)
        B_l2l1.append(b.cons().forward(obj_type=B_l1, name=f"B_L2L1_{col}", placement=Tile(col, 1),
                                       dims_to_stream=[(k // s, s * n), (n // t, t), (s, n), (t, 1)]))
        c = ObjectFifo(C_l2, name=f"C_L2L3_{col}", depth=2,
                       dims_to_stream=[(m // r, r * n), (r, t), (n // t, r * t), (t, 1)])
        C_l2l3.append(c)
        joined = c.prod().join([m * n * i for i in range(ROWS)], obj_types=[C_l1] * ROWS,
                               names=[f"C_L1L2_{col}_{row}" for row in range(ROWS)], depths=[2] * ROWS,
                               placement=Tile(col, 1))
        for row in range(ROWS):
            C_l1l2[row][col] = joined[row]

    rtps = [[GlobalBuffer(rtp_ty, name=f"rtp_{row}_{col}", use_write_rtp=True) for col in range(COLS)] for row in range(ROWS)]
    barriers = [[WorkerRuntimeBarrier() for col in range(COLS)] for row in range(ROWS)]

    def core_fn(in_a, in_b, out_c, rtp, barrier, zero, matmul, epilogue):
        barrier.wait_for_value(1)  # the instruction stream has written this run's parameters
        for _ in range_(rtp[0]):  # output tiles of this core
            c = out_c.acquire(1)
            zero(c)
            for _ in range_(rtp[1]):  # K in ascending 64-deep steps; the f32 accumulator stays in L1
                a = in_a.acquire(1)
                b = in_b.acquire(1)
                matmul(a, b, c)
                in_a.release(1)
                in_b.release(1)
            eb = in_b.acquire(1)  # the slab's epilogue block: bias (f32)
            epilogue(c, eb, rtp[2])  # + bias, then GELU (tanh form, vectorised) when rtp[2]
            in_b.release(1)
            out_c.release(1)
        barrier.release_with_value(0)

    workers = [Worker(core_fn, [A_l2l1[row].cons(), B_l2l1[col].cons(), C_l1l2[row][col].prod(), rtps[row][col],
                                barriers[row][col], zero, matmul, epilogue], placement=Tile(col, 2 + row))
               for row in range(ROWS) for col in range(COLS)]

    row_blocks = M // (m * ROWS)
    j_per_col = N // n // COLS  # output column blocks per core column
    tiles_per_core = row_blocks * j_per_col

    def set_rtps(*bufs):
        for buf in bufs:
            buf[0], buf[1], buf[2] = tiles_per_core, K // k, int(gelu)

    rt = Runtime()
    with rt.sequence(A_ty, B_ty, C_ty) as (A, B, C):
        rt.start(*workers)
        rt.inline_ops(set_rtps, [b for row in rtps for b in row])
        for row in range(ROWS):
            for col in range(COLS):
                rt.set_barrier(barriers[row][col], 1)
        for rb0 in range(0, row_blocks, 2):  # ping-pong: two row blocks per task group
            tg = rt.task_group()
            for rb in range(rb0, min(rb0 + 2, row_blocks)):
                for col in range(COLS):
                    # A: core row `col`'s 64 rows of this row block, all K steps, once per output column block
                    rt.fill(A_l3l2[col].prod(), A, TensorAccessPattern(
                        (M, K), (rb * ROWS + col) * m * K, [j_per_col, K // k, m, k], [0, k, K, 1]),
                        task_group=tg, placement=Tile(col, 0))
                    # B: this column's slabs nb = col, col + COLS, ... (each K/k + 1 blocks, contiguous)
                    rt.fill(B_l3l2[col].prod(), B, TensorAccessPattern(
                        (N // n, kb * k * n), col * kb * k * n, [j_per_col, kb, k, n], [COLS * kb * k * n, k * n, n, 1]),
                        task_group=tg, placement=Tile(col, 0))
                    # C: the joined (4 x 64) x 32 blocks of this column into row-major C
                    rt.drain(C_l2l3[col].cons(), C, TensorAccessPattern(
                        (M, N), rb * ROWS * m * N + col * n, [1, j_per_col, ROWS * m, n], [0, COLS * n, N, 1]),
                        task_group=tg, wait=True, placement=Tile(col, 0))
            rt.finish_task_group(tg)
    dev = NPU2() if device == "npu2" else NPU1Col4()
    return Program(dev, rt).resolve_program(SequentialPlacer())


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="bf16 gemm (+bias in the B stream, +GELU) over the whole array")
    p.add_argument("-M", type=int, required=True)
    p.add_argument("-K", type=int, required=True)
    p.add_argument("-N", type=int, required=True)
    p.add_argument("--gelu", action="store_true")
    p.add_argument("--device", default="npu1", choices=["npu1", "npu2"])
    a = p.parse_args()
    print(design(a.M, a.K, a.N, a.gelu, a.device))

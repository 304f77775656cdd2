# layernorm.py -*- Python -*-  IRON design: LayerNorm over the rows of x[M, N] (bf16 in/out, f32
# statistics), all 16 cores. One xclbin per model width N (buffers are sized by N); the step
# count (rows) is a runtime parameter, so one xclbin serves every M.
#
# Per column, the memtile splits a 16-row block of x into 4 cores (4 rows each) and joins their
# outputs; gamma/beta/eps (f32) arrive once per run on the same memtile and are broadcast to the
# column's 4 cores. So each core uses 2 inputs + 1 output and the memtile 6 + 6 channels (was:
# 4 inputs per core straight from the shim, 69 KiB per core). The kernel (kernels/aie2/rows.cc)
# is vectorised with aie_api: 16-lane sums for mean and variance, aie::invsqrt, vector affine.
import argparse

import numpy as np
from aie.helpers.dialects.ext.scf import _for as range_
from aie.helpers.taplib import TensorAccessPattern
from aie.iron import GlobalBuffer, Kernel, ObjectFifo, Program, Runtime, Worker, WorkerRuntimeBarrier
from aie.iron.device import NPU2, NPU1Col4, Tile
from aie.iron.placers import SequentialPlacer
from ml_dtypes import bfloat16

ROWS, COLS, R = 4, 4, 4  # R rows of x per core per step


def design(M: int, N: int, device: str = "npu1"):
    assert M % (ROWS * COLS * R) == 0 and N % 32 == 0 and N <= 1024
    steps = M // (ROWS * COLS * R)
    x_ty = np.ndarray[(M * N,), np.dtype[bfloat16]]
    p_ty = np.ndarray[(2 * N + 16,), np.dtype[np.float32]]  # gamma | beta | eps
    blk_l2 = np.ndarray[(ROWS * R * N,), np.dtype[bfloat16]]
    blk = np.ndarray[(R * N,), np.dtype[bfloat16]]
    prm = np.ndarray[(2 * N + 16,), np.dtype[np.float32]]
    rtp_ty = np.ndarray[(4,), np.dtype[np.int32]]
    kern = Kernel("layernorm_rows_bf16", "rows.o", [blk, prm, blk, np.int32])

    x_in, x_split, p_in, p_fwd, y_out, y_join = [], [], [], [], [], []
    for col in range(COLS):
        x = ObjectFifo(blk_l2, name=f"X_L3L2_{col}", depth=2)
        x_in.append(x)
        x_split.append(x.cons().split([R * N * i for i in range(ROWS)], obj_types=[blk] * ROWS,
                                      names=[f"X_{col}_{row}" for row in range(ROWS)], placement=Tile(col, 1)))
        p = ObjectFifo(prm, name=f"P_L3L2_{col}", depth=1)
        p_in.append(p)
        p_fwd.append(p.cons().forward(obj_type=prm, name=f"P_L2L1_{col}", depth=1, placement=Tile(col, 1)))
        y = ObjectFifo(blk_l2, name=f"Y_L2L3_{col}", depth=2)
        y_out.append(y)
        y_join.append(y.prod().join([R * N * i for i in range(ROWS)], obj_types=[blk] * ROWS,
                                    names=[f"Y_{col}_{row}" for row in range(ROWS)], placement=Tile(col, 1)))

    def core_fn(xi, pi, yo, rtp, barrier, kern):
        barrier.wait_for_value(1)
        pp = pi.acquire(1)
        for _ in range_(rtp[1]):
            x = xi.acquire(1)
            y = yo.acquire(1)
            kern(x, pp, y, rtp[0])
            xi.release(1)
            yo.release(1)
        pi.release(1)
        barrier.release_with_value(0)

    rtps = [[GlobalBuffer(rtp_ty, name=f"rtp_{c}_{r}", use_write_rtp=True) for r in range(ROWS)] for c in range(COLS)]
    bars = [[WorkerRuntimeBarrier() for r in range(ROWS)] for c in range(COLS)]
    workers = [Worker(core_fn, [x_split[c][r].cons(), p_fwd[c].cons(), y_join[c][r].prod(), rtps[c][r], bars[c][r], kern],
                      placement=Tile(c, 2 + r)) for c in range(COLS) for r in range(ROWS)]

    def set_rtps(*bufs):
        for b in bufs:
            b[0], b[1] = N, steps

    rt = Runtime()
    with rt.sequence(x_ty, p_ty, x_ty) as (X, P, Y):
        rt.start(*workers)
        rt.inline_ops(set_rtps, [b for c in rtps for b in c])
        for c in range(COLS):
            for r in range(ROWS):
                rt.set_barrier(bars[c][r], 1)
        tg = rt.task_group()
        for c in range(COLS):
            rt.fill(p_in[c].prod(), P, TensorAccessPattern((2 * N + 16,), 0, [1, 1, (2 * N + 16) // 16, 16], [0, 0, 16, 1]),
                    task_group=tg, placement=Tile(c, 0))
            # column c takes 16-row blocks c, c + 4, ... ; a block is padded to N per row in L1:
            # the stream carries N values per row, the memtile object holds R*ROWS rows of N
            rows_tap = TensorAccessPattern((M, N), c * ROWS * R * N, [steps, ROWS * R, 1, N], [COLS * ROWS * R * N, N, 0, 1])
            rt.fill(x_in[c].prod(), X, rows_tap, task_group=tg, placement=Tile(c, 0))
            rt.drain(y_out[c].cons(), Y, rows_tap, task_group=tg, wait=True, placement=Tile(c, 0))
        rt.finish_task_group(tg)
    dev = NPU2() if device == "npu2" else NPU1Col4()
    return Program(dev, rt).resolve_program(SequentialPlacer())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="LayerNorm over rows, bf16 in/out, f32 statistics")
    ap.add_argument("-M", type=int, required=True)
    ap.add_argument("-N", type=int, required=True)
    ap.add_argument("--device", default="npu1", choices=["npu1", "npu2"])
    a = ap.parse_args()
    print(design(a.M, a.N, a.device))

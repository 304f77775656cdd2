# layernorm.py -*- Python -*-  IRON design: LayerNorm over rows of x[M, N] (bf16 in/out, f32 stats).
# Rows are spread over all 16 cores of npu1 (4 columns x 4 rows), 16 rows per core per step;
# gamma/beta (f32) and params [eps] are loaded once per core. Dataflow after mlir-aie
# programming_examples/ml/layernorm (and basic/vector_scalar_mul for the Worker/Runtime shape).
import argparse

import numpy as np
from ml_dtypes import bfloat16

from aie.helpers.dialects.ext.scf import _for as range_
from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker
from aie.iron.placers import SequentialPlacer
from aie.iron.device import NPU1Col4, Tile

COLS, ROWS_OF_CORES, R = 4, 4, 16  # R rows of x per core per step


def layernorm(M, N):
    cores = COLS * ROWS_OF_CORES
    assert M % (cores * R) == 0
    steps = M // (cores * R)
    x_ty = np.ndarray[(M * N,), np.dtype[bfloat16]]
    v_ty = np.ndarray[(N,), np.dtype[np.float32]]
    p_ty = np.ndarray[(4,), np.dtype[np.float32]]
    blk = np.ndarray[(R, N), np.dtype[bfloat16]]
    vec = np.ndarray[(N,), np.dtype[np.float32]]
    prm = np.ndarray[(4,), np.dtype[np.float32]]
    kern = Kernel("layernorm_bf16", "layernorm.o", [blk, vec, vec, prm, blk, np.int32])

    def core_fn(xi, g, b, p, yo, kern):
        gg, bb, pp = g.acquire(1), b.acquire(1), p.acquire(1)
        for _ in range_(steps):
            x = xi.acquire(1)
            y = yo.acquire(1)
            kern(x, gg, bb, pp, y, N)
            xi.release(1)
            yo.release(1)
        g.release(1); b.release(1); p.release(1)

    workers, xs, ys, gs, bs, ps = [], [], [], [], [], []
    for c in range(COLS):
        for r in range(ROWS_OF_CORES):
            i = c * ROWS_OF_CORES + r
            xs.append(ObjectFifo(blk, name=f"x{i}", depth=2))
            ys.append(ObjectFifo(blk, name=f"y{i}", depth=2))
            gs.append(ObjectFifo(vec, name=f"g{i}", depth=1))
            bs.append(ObjectFifo(vec, name=f"b{i}", depth=1))
            ps.append(ObjectFifo(prm, name=f"p{i}", depth=1))
            workers.append(Worker(core_fn, [xs[i].cons(), gs[i].cons(), bs[i].cons(), ps[i].cons(), ys[i].prod(), kern],
                                  placement=Tile(c, 2 + r)))
    rt = Runtime()
    with rt.sequence(x_ty, v_ty, v_ty, p_ty, x_ty) as (X, G, B, P, Y):
        rt.start(*workers)
        for i in range(cores):
            rt.fill(gs[i].prod(), G)
            rt.fill(bs[i].prod(), B)
            rt.fill(ps[i].prod(), P)
            # core i takes row blocks i, i + cores, i + 2*cores, ...
            rt.fill(xs[i].prod(), X, offset=i * R * N, sizes=[1, steps, R, N], strides=[0, cores * R * N, N, 1])
        for i in range(cores):
            rt.drain(ys[i].cons(), Y, offset=i * R * N, sizes=[1, steps, R, N], strides=[0, cores * R * N, N, 1],
                     wait=True)
    return Program(NPU1Col4(), rt).resolve_program(SequentialPlacer())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="LayerNorm over rows, bf16 in/out, f32 statistics")
    ap.add_argument("-M", type=int, required=True)
    ap.add_argument("-N", type=int, required=True)
    a = ap.parse_args()
    print(layernorm(a.M, a.N))

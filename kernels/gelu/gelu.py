# gelu.py -*- Python -*-  IRON design: GELU (tanh form) over x[M, N], bf16 in/out, f32 math.
# Rows spread over all 16 cores as in layernorm.py; after mlir-aie programming_examples/ml/eltwise
# style (ObjectFifo per core, one Kernel call per block). Used only when GELU is not fused into
# the gemm epilogue (the encoder always fuses it).
import argparse

import numpy as np
from ml_dtypes import bfloat16

from aie.helpers.dialects.ext.scf import _for as range_
from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker
from aie.iron.placers import SequentialPlacer
from aie.iron.device import NPU1Col4, Tile

COLS, ROWS_OF_CORES, R = 4, 4, 16


def gelu(M, N):
    cores = COLS * ROWS_OF_CORES
    assert M % (cores * R) == 0
    steps = M // (cores * R)
    x_ty = np.ndarray[(M * N,), np.dtype[bfloat16]]
    blk = np.ndarray[(R * N,), np.dtype[bfloat16]]
    kern = Kernel("gelu_bf16", "gelu.o", [blk, blk, np.int32])

    def core_fn(xi, yo, kern):
        for _ in range_(steps):
            x = xi.acquire(1)
            y = yo.acquire(1)
            kern(x, y, R * N)
            xi.release(1)
            yo.release(1)

    xs = [ObjectFifo(blk, name=f"x{i}", depth=2) for i in range(cores)]
    ys = [ObjectFifo(blk, name=f"y{i}", depth=2) for i in range(cores)]
    workers = [Worker(core_fn, [xs[i].cons(), ys[i].prod(), kern], placement=Tile(i // ROWS_OF_CORES, 2 + i % ROWS_OF_CORES))
               for i in range(cores)]
    rt = Runtime()
    with rt.sequence(x_ty, x_ty) as (X, Y):
        rt.start(*workers)
        for i in range(cores):
            rt.fill(xs[i].prod(), X, offset=i * R * N, sizes=[1, steps, R, N], strides=[0, cores * R * N, N, 1])
        for i in range(cores):
            rt.drain(ys[i].cons(), Y, offset=i * R * N, sizes=[1, steps, R, N], strides=[0, cores * R * N, N, 1],
                     wait=True)
    return Program(NPU1Col4(), rt).resolve_program(SequentialPlacer())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="GELU (tanh form), bf16 in/out")
    ap.add_argument("-M", type=int, required=True)
    ap.add_argument("-N", type=int, required=True)
    a = ap.parse_args()
    print(gelu(a.M, a.N))

# attention.py -*- Python -*-  IRON design: flash attention of ONE 64-row query tile of one head
# against ALL key tiles (Tk keys, the last tile partial and masked), bf16 in, f32 accumulate.
#
# One dispatch = one (head, query tile): the host passes sub-buffers for this head's Q tile,
# this head's whole K and V, a params word [valid_keys] and this (head, tile)'s output slice.
# The 64 query rows are split over the 4 cores of column 0 (16 rows each); K and V tiles are
# broadcast from the memtile to all four; each core runs the online softmax (running row max
# and sum, rescaling its f32 output accumulator) over the key tiles in order.
# Dataflow style after mlir-aie programming_examples/basic/vector_scalar_mul (ObjectFifo +
# Worker + Runtime) and the flash-attention structure of programming_examples/ml/ (softmax,
# matmul); the core kernel is kernels/aie2/flash_attn.cc.
import argparse

import numpy as np
from ml_dtypes import bfloat16

from aie.helpers.dialects.ext.scf import _for as range_
from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker
from aie.iron.placers import SequentialPlacer
from aie.iron.device import NPU1Col1, Tile

TQ, TK, CORES = 64, 64, 4


def attention(tk_total, d):
    assert tk_total % TK == 0 and d % 8 == 0
    rows = TQ // CORES
    n_kt = tk_total // TK

    q_ty = np.ndarray[(TQ * d,), np.dtype[bfloat16]]
    kv_ty = np.ndarray[(tk_total * d,), np.dtype[bfloat16]]
    p_ty = np.ndarray[(4,), np.dtype[np.int32]]
    o_ty = np.ndarray[(TQ * d,), np.dtype[bfloat16]]
    q_l1 = np.ndarray[(rows, d), np.dtype[bfloat16]]
    kv_l1 = np.ndarray[(TK, d), np.dtype[bfloat16]]
    p_l1 = np.ndarray[(4,), np.dtype[np.int32]]
    o_l1 = np.ndarray[(rows, d), np.dtype[bfloat16]]
    state_l1 = np.ndarray[(rows * (d + 2),), np.dtype[np.float32]]  # acc[rows][d], m[rows], l[rows]

    obj = f"flash_attn_d{d}.o"
    k_init = Kernel("fa_init", obj, [state_l1])
    k_step = Kernel("fa_step_bf16", obj, [q_l1, kv_l1, kv_l1, state_l1, np.int32, np.int32])
    k_final = Kernel("fa_finish_bf16", obj, [state_l1, o_l1])

    q_in = ObjectFifo(np.ndarray[(TQ * d,), np.dtype[bfloat16]], name="q_in", depth=1)
    q_split = q_in.cons().split([rows * d * i for i in range(CORES)], obj_types=[q_l1] * CORES,
                                names=[f"q_{i}" for i in range(CORES)], placement=Tile(0, 1))
    k_in = ObjectFifo(kv_l1, name="k_in", depth=2)  # broadcast to the 4 cores
    v_in = ObjectFifo(kv_l1, name="v_in", depth=2)
    p_in = ObjectFifo(p_l1, name="p_in", depth=1)
    o_out = ObjectFifo(np.ndarray[(TQ * d,), np.dtype[bfloat16]], name="o_out", depth=1)
    o_join = o_out.prod().join([rows * d * i for i in range(CORES)], obj_types=[o_l1] * CORES,
                               names=[f"o_{i}" for i in range(CORES)], placement=Tile(0, 1))
    state = [np.zeros(rows * (d + 2), np.float32) for _ in range(CORES)]

    def core_fn(q, k, v, p, o, init, step, finish, st):
        qt = q.acquire(1)
        pp = p.acquire(1)
        init(st)
        for j in range_(n_kt):  # every key tile, in order; tiles past valid_keys are skipped inside
            kt = k.acquire(1)
            vt = v.acquire(1)
            step(qt, kt, vt, st, j, pp[0])  # masks keys >= valid_keys in the partial tile
            k.release(1)
            v.release(1)
        ot = o.acquire(1)
        finish(st, ot)
        o.release(1)
        p.release(1)
        q.release(1)

    from aie.iron import GlobalBuffer
    workers = [
        Worker(core_fn, [q_split[i].cons(), k_in.cons(), v_in.cons(), p_in.cons(), o_join[i].prod(),
                         k_init, k_step, k_final, GlobalBuffer(state_l1, initial_value=state[i], name=f"st_{i}")],
               placement=Tile(0, 2 + i))
        for i in range(CORES)
    ]
    rt = Runtime()
    with rt.sequence(q_ty, kv_ty, kv_ty, p_ty, o_ty) as (Q, K, V, P, O):
        rt.start(*workers)
        rt.fill(p_in.prod(), P)
        rt.fill(q_in.prod(), Q)
        rt.fill(k_in.prod(), K)  # Tk x d, streamed as n_kt tiles of 64 x d
        rt.fill(v_in.prod(), V)
        rt.drain(o_out.cons(), O, wait=True)
    return Program(NPU1Col1(), rt).resolve_program(SequentialPlacer())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="flash attention, one (head, 64-row query tile) per dispatch")
    ap.add_argument("--tk", type=int, required=True, help="keys, padded to a multiple of 64")
    ap.add_argument("-d", type=int, default=64)
    a = ap.parse_args()
    print(attention(a.tk, a.d))

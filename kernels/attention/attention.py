# attention.py -*- Python -*-  IRON design: multi-head flash attention of a whole encoder layer in
# ONE dispatch: every head and every 64-row query tile, on all 16 cores of npu1.
#
# Work split: column c takes heads c, c + 4, ...; within a column the 4 cores take 4 consecutive
# query tiles of that head at a time (a "round"); the head's K and V tiles stream once per round
# from DDR through the column's memtile, which broadcasts each 64-key tile to the 4 cores (one
# input channel for K and V together: the host interleaves them per key tile). Each core keeps
# its Q tile, runs the online softmax over all key tiles (running max / sum, 1/sqrt(d), keys past
# `valid_keys` masked) with aie::mmul for Q.K^T and P.V (kernels/aie2/mha.cc, after mlir-aie
# aie_kernels/aie2/mm.cc and the softmax/exp2 kernels), and emits its 64 x 64 bf16 output plus a
# 65th row of timing words: the core's own cycle counter at the start and end of this
# (head, query tile), its column and row. The host turns those into per-(head, tile) events.
# Runtime parameters (per run): [valid_keys, key tiles, rounds of this column].
#
# Input: the qkv gemm's output as ONE bf16 tensor qkv[T][3D] (q | k | v side by side, heads
# in order inside each, D = H * d), exactly as the host holds it; the shim access patterns do
# the head split (a 64-wide column window of a 3D-wide row) and interleave K and V per key
# tile (repeat over key tiles, size 2 with stride D between K and V), so the host does no
# per-head packing. Rows T_valid..T-1 must be finite (the host leaves them zero); keys there
# are masked by valid_keys.
import argparse

import numpy as np
from aie.helpers.dialects.ext.scf import _for as range_
from aie.helpers.taplib import TensorAccessPattern
from aie.iron import GlobalBuffer, Kernel, ObjectFifo, Program, Runtime, Worker, WorkerRuntimeBarrier
from aie.iron.device import NPU2, NPU1Col4, Tile
from aie.iron.placers import SequentialPlacer
from ml_dtypes import bfloat16

ROWS, COLS, TQ, TK = 4, 4, 64, 64
O_ROWS = TQ + 1  # 64 output rows + 1 row of timing words
STATE_WORDS = TQ * 64 + 2 * TQ  # acc[64][d] f32, m[64], l[64]
SCRATCH_WORDS = 16 * TK  # S / P for 16 query rows at a time (f32)


def design(H: int, T: int, d: int = 64, device: str = "npu1", valid: int | None = None):
    assert T % (TQ * ROWS) == 0 and d == 64
    valid = T if valid is None else valid
    assert 0 < valid <= T
    nt = T // TK
    D = H * d
    qkv_ty = np.ndarray[(T * 3 * D,), np.dtype[bfloat16]]  # [T][q | k | v], each [H][d]
    o_ty = np.ndarray[(H * (T // TQ) * O_ROWS * d,), np.dtype[bfloat16]]  # [H][T/64][65][d]
    q_l2 = np.ndarray[(ROWS * TQ * d,), np.dtype[bfloat16]]
    q_l1 = np.ndarray[(TQ, d), np.dtype[bfloat16]]
    kv_l1 = np.ndarray[(TK, d), np.dtype[bfloat16]]
    o_l1 = np.ndarray[(O_ROWS, d), np.dtype[bfloat16]]
    o_l2 = np.ndarray[(ROWS * O_ROWS * d,), np.dtype[bfloat16]]
    state_ty = np.ndarray[(STATE_WORDS,), np.dtype[np.float32]]
    scratch_ty = np.ndarray[(SCRATCH_WORDS,), np.dtype[np.float32]]
    rtp_ty = np.ndarray[(4,), np.dtype[np.int32]]

    obj = f"mha_d{d}.o"
    k_begin = Kernel("mha_begin", obj, [state_ty, o_l1, np.int32, np.int32])
    k_step = Kernel("mha_step", obj, [q_l1, kv_l1, kv_l1, state_ty, scratch_ty, np.int32])
    k_end = Kernel("mha_end", obj, [state_ty, o_l1])

    q_in, kv_l3, kv_in, o_out, q_split, o_join = [], [], [], [], [], []
    for col in range(COLS):
        q = ObjectFifo(q_l2, name=f"Q_L3L2_{col}", depth=1)
        q_in.append(q)
        q_split.append(q.cons().split([TQ * d * i for i in range(ROWS)], obj_types=[q_l1] * ROWS,
                                      names=[f"Q_{col}_{row}" for row in range(ROWS)], depths=[1] * ROWS,
                                      placement=Tile(col, 1)))
        kv = ObjectFifo(kv_l1, name=f"KV_L3L2_{col}", depth=2)
        kv_l3.append(kv)
        kv_in.append(kv.cons().forward(obj_type=kv_l1, name=f"KV_L2L1_{col}", placement=Tile(col, 1)))
        o = ObjectFifo(o_l2, name=f"O_L2L3_{col}", depth=1)
        o_out.append(o)
        o_join.append(o.prod().join([O_ROWS * d * i for i in range(ROWS)], obj_types=[o_l1] * ROWS,
                                    names=[f"O_{col}_{row}" for row in range(ROWS)], depths=[1] * ROWS,
                                    placement=Tile(col, 1)))

    def core_fn(q, kv, o, rtp, barrier, state, scratch, begin, step, end, col, row):
        barrier.wait_for_value(1)
        for _ in range_(rtp[2]):  # rounds (head, 4 query tiles) of this column
            qt = q.acquire(1)
            ot = o.acquire(1)
            begin(state, ot, col, row)  # zero acc, m = -inf, l = 0; cycle counter -> timing row
            for _ in range_(rtp[1]):  # every key tile of the head, in order
                kt, vt = kv.acquire(2)  # K tile then V tile: two objects of the one K/V stream
                step(qt, kt, vt, state, scratch, rtp[0])  # masks keys >= valid_keys; mmul Q.K^T and P.V
                kv.release(2)
            end(state, ot)  # O = acc / l -> bf16; cycle counter -> timing row
            q.release(1)
            o.release(1)
        barrier.release_with_value(0)

    rtps = [[GlobalBuffer(rtp_ty, name=f"rtp_{col}_{row}", use_write_rtp=True) for row in range(ROWS)] for col in range(COLS)]
    bars = [[WorkerRuntimeBarrier() for row in range(ROWS)] for col in range(COLS)]
    workers = []
    for col in range(COLS):
        for row in range(ROWS):
            st = GlobalBuffer(state_ty, name=f"state_{col}_{row}")
            sc = GlobalBuffer(scratch_ty, name=f"scratch_{col}_{row}")
            workers.append(Worker(core_fn, [q_split[col][row].cons(), kv_in[col].cons(), o_join[col][row].prod(),
                                            rtps[col][row], bars[col][row], st, sc, k_begin, k_step, k_end, col, row],
                                  placement=Tile(col, 2 + row)))

    heads_of = [list(range(col, H, COLS)) for col in range(COLS)]
    rounds_per_head = T // TQ // ROWS

    def set_rtps(*bufs):
        for i, buf in enumerate(bufs):
            buf[0], buf[1], buf[2] = valid, nt, len(heads_of[i // ROWS]) * rounds_per_head

    rt = Runtime()
    with rt.sequence(qkv_ty, o_ty) as (QKV, O):
        rt.start(*workers)
        rt.inline_ops(set_rtps, [b for col in rtps for b in col])
        for col in range(COLS):
            for row in range(ROWS):
                rt.set_barrier(bars[col][row], 1)
        for col in range(COLS):
            for h in heads_of[col]:
                for rd in range(rounds_per_head):
                    tg = rt.task_group()
                    # Q: 4 consecutive query tiles (256 rows) of head h, one per core row
                    rt.fill(q_in[col].prod(), QKV, TensorAccessPattern(
                        (T, 3 * D), rd * ROWS * TQ * 3 * D + h * d, [1, 1, ROWS * TQ, d], [0, 0, 3 * D, 1]),
                        task_group=tg, placement=Tile(col, 0))
                    # K and V of head h, interleaved per 64-key tile, broadcast to the column
                    rt.fill(kv_l3[col].prod(), QKV, TensorAccessPattern(
                        (T, 3 * D), D + h * d, [nt, 2, TK, d], [TK * 3 * D, D, 3 * D, 1]),
                        task_group=tg, placement=Tile(col, 0))
                    # O + timing rows of the 4 tiles, into [H][T/64][65][d]
                    rt.drain(o_out[col].cons(), O, TensorAccessPattern(
                        (H * (T // TQ) * O_ROWS, d), (h * (T // TQ) + rd * ROWS) * O_ROWS * d,
                        [1, ROWS, O_ROWS, d], [0, O_ROWS * d, d, 1]),
                        task_group=tg, wait=True, placement=Tile(col, 0))
                    rt.finish_task_group(tg)
    dev = NPU2() if device == "npu2" else NPU1Col4()
    return Program(dev, rt).resolve_program(SequentialPlacer())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="flash attention, all heads and query tiles of a layer per dispatch")
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("-T", type=int, required=True, help="frames, padded to a multiple of 256")
    ap.add_argument("--valid", type=int, help="keys that are not padding (default: T)")
    ap.add_argument("--device", default="npu1", choices=["npu1", "npu2"])
    a = ap.parse_args()
    print(design(a.heads, a.T, 64, a.device, a.valid))

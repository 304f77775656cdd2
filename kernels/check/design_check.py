"""The design check: run an IRON design against the IRON double and measure it against the
hardware limits of :mod:`kernels.check.limits`.

    python -m kernels.check.design_check gemm/gemm.py -- -M 1536 -K 512 -N 512

:func:`load_design` imports the design file with the double's ``aie`` package first on
``sys.path`` and calls its builder; :func:`check_design` returns a list of violations
(empty: the design fits) and a :class:`Usage` summary.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import objects
from .limits import LIMITS, ArrayLimits, fmt_bytes

DOUBLE = Path(__file__).resolve().parent / "iron_double"
FALLBACK = Path(__file__).resolve().parent / "fallback"  # ml_dtypes when it is not installed


@contextlib.contextmanager
def iron_double():
    """``import aie`` gives the double while the block runs."""
    saved = {k: v for k, v in sys.modules.items() if k == "aie" or k.startswith("aie.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(DOUBLE))
    sys.path.append(str(FALLBACK))
    try:
        yield
    finally:
        sys.path.remove(str(DOUBLE))
        sys.path.remove(str(FALLBACK))
        for k in [k for k in sys.modules if k == "aie" or k.startswith("aie.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"design_{path.stem}", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(path: Path, fn: str, *args, **kwargs):
    """Import ``path`` under the double and return ``fn(*args, **kwargs)`` (a Design or what it returns)."""
    with iron_double():
        return getattr(load_module(Path(path)), fn)(*args, **kwargs)


@dataclass
class Usage:
    """What one design uses, per tile."""

    dma_in: dict = field(default_factory=lambda: defaultdict(set))
    dma_out: dict = field(default_factory=lambda: defaultdict(set))
    mem: dict = field(default_factory=lambda: defaultdict(int))
    bds: dict = field(default_factory=lambda: defaultdict(int))
    stack: dict = field(default_factory=dict)
    columns: int = 0
    cores: int = 0


def _kind(tile) -> str:
    return "shim" if tile.row == 0 else "mem" if tile.row == 1 else "core"


def _endpoint_tile(h):
    ep = h.endpoint
    if ep is None:
        raise ValueError(f"ObjectFifo {h.fifo.name}: a {'producer' if h.is_prod else 'consumer'} handle was never used")
    return ep.tile


def check_design(design, limits: ArrayLimits | None = None, kernels_root: Path | None = None) -> tuple[list[str], Usage]:
    lim = limits or LIMITS[design.device.generation]
    root = kernels_root or objects.KERNELS
    errors: list[str] = []
    u = Usage()

    # -- DMA channels and buffers of object fifos -----------------------------------------
    for f in design.fifos:
        prod_tile = _endpoint_tile(f._prod)
        cons_tiles = [_endpoint_tile(c) for c in f._cons]
        remote = [t for t in cons_tiles if t != prod_tile]
        if remote:  # one MM2S at the producer (a broadcast is one channel), one S2MM per consumer tile
            u.dma_out[prod_tile].add(f.name)
            for t in remote:
                u.dma_in[t].add(f.name)
        for h, t in [(f._prod, prod_tile)] + list(zip(f._cons, cons_tiles)):
            if _kind(t) == "core":  # each endpoint keeps `depth` buffers in the core's memory
                u.mem[t] += h.depth * f.nbytes
                u.bds[t] += h.depth
    for link in design.links:
        big = link.srcs if link.kind == "join" and False else None  # noqa: F841 (kept simple below)
        # the memtile holds the buffers of the joined / split side (sub-fifos are views into it)
        side = link.dsts[0] if link.kind == "join" else link.srcs[0]
        u.mem[link.tile] += side.depth * side.fifo.nbytes
        u.bds[link.tile] += sum(h.depth for h in link.srcs + link.dsts)
    for w in design.workers:
        stack = w.stack_size or lim.default_stack
        u.mem[w.tile] += stack + sum(b.nbytes for b in w.buffers)
        u.stack[w.tile] = stack
        if w.link_with:
            src, defines = objects.OBJECTS.get(w.link_with, (None, {}))
            if src is None:
                errors.append(f"core {w.tile}: links {w.link_with}, which kernels/check/objects.py does not know")
            elif (root / src).is_file():
                need = objects.stack_bytes(root / src, defines)
                for k in w.kernels:
                    if need.get(k.name, 0) > stack:
                        errors.append(f"core {w.tile}: kernel {k.name} ({src}) keeps {need[k.name]} B of arrays on "
                                      f"the stack, the Worker's stack is {stack} B (no stack guard: it overwrites "
                                      f"neighbouring buffers)")
    # -- runtime sequence: shim channels, buffer descriptors, access patterns -----------------
    live: dict = defaultdict(list)  # shim tile -> live tasks
    peak: dict = defaultdict(int)
    for task in design.runtime.tasks:
        if isinstance(task, tuple):
            if task[0] == "finish":
                for t in live:
                    live[t] = [x for x in live[t] if x.task_group is not task[1]]
            continue
        tile = task.tile
        if _kind(tile) != "shim":
            errors.append(f"runtime {('fill' if task.is_fill else 'drain')} of {task.handle.name} placed on {tile}, not a shim tile")
            continue
        live[tile].append(task)
        peak[tile] = max(peak[tile], len(live[tile]))
        errors.extend(_check_tap(task, lim))
    for t, n in peak.items():
        u.bds[t] = n
    # -- limits -------------------------------------------------------------------------
    tiles = set(u.dma_in) | set(u.dma_out) | set(u.mem) | set(u.bds)
    for t in sorted(tiles, key=lambda t: (t.col, t.row)):
        kind = _kind(t)
        cin, cout = {"core": lim.core_dma, "mem": lim.memtile_dma, "shim": lim.shim_dma}[kind]
        if len(u.dma_in[t]) > cin:
            errors.append(f"{kind} tile {t}: {len(u.dma_in[t])} input DMA channels (S2MM) in use, it has {cin}: "
                          f"{', '.join(sorted(u.dma_in[t]))}")
        if len(u.dma_out[t]) > cout:
            errors.append(f"{kind} tile {t}: {len(u.dma_out[t])} output DMA channels (MM2S) in use, it has {cout}: "
                          f"{', '.join(sorted(u.dma_out[t]))}")
        cap = {"core": lim.core_memory, "mem": lim.memtile_memory, "shim": None}[kind]
        if cap is not None and u.mem[t] > cap:
            errors.append(f"{kind} tile {t}: {fmt_bytes(u.mem[t])} of buffers (incl. double buffers"
                          f"{' and the stack' if kind == 'core' else ''}), it has {fmt_bytes(cap)}")
        nbd = {"core": lim.core_bds, "mem": lim.memtile_bds, "shim": lim.shim_bds}[kind]
        if u.bds[t] > nbd:
            what = "runtime DMA tasks in flight at once" if kind == "shim" else "buffer descriptors"
            errors.append(f"{kind} tile {t}: {u.bds[t]} {what}, it has {nbd} buffer descriptors")
    used_cols = {t.col for t in tiles}
    u.columns = max(used_cols) + 1 if used_cols else 0
    u.cores = len(design.workers)
    if u.columns > min(design.device.cols, lim.cols):
        errors.append(f"design uses {u.columns} columns; the {lim.generation} partition has {min(design.device.cols, lim.cols)}")
    return errors, u


def _check_tap(task, lim: ArrayLimits) -> list[str]:
    tap, data = task.tap, task.data
    item = data.dtype.itemsize
    what = f"{'fill' if task.is_fill else 'drain'} {task.handle.name} on {task.tile}"
    errs = []
    if len(tap.sizes) > 4:
        errs.append(f"{what}: {len(tap.sizes)}-D access pattern, the shim DMA has 3 dimensions + repeat")
        return errs
    sizes = [1] * (4 - len(tap.sizes)) + tap.sizes
    strides = [0] * (4 - len(tap.strides)) + tap.strides
    if (sizes[3] * item) % 4 or (tap.offset * item) % 4:
        errs.append(f"{what}: innermost run / offset not a whole number of 32-bit words")
    words0 = sizes[3] * item // 4
    if sizes[0] > lim.bd_repeat_max:
        errs.append(f"{what}: repeat {sizes[0]} exceeds the [1:{lim.bd_repeat_max}] range")
    if strides[2] and sizes[2] > lim.bd_wrap_max:
        errs.append(f"{what}: size {sizes[2]} exceeds the [0:{lim.bd_wrap_max}] range")
    if strides[3] and words0 > lim.bd_wrap_max:
        errs.append(f"{what}: innermost size {words0} words exceeds the [0:{lim.bd_wrap_max}] range")
    for s in strides[:3]:
        if s * item // 4 > lim.bd_stride_max:
            errs.append(f"{what}: stride {s} exceeds the 1M-word range")
    idx = tap.indices()
    n = int(np.prod(data.shape))
    if idx.min() < 0 or idx.max() >= n:
        errs.append(f"{what}: access pattern reaches elements [{idx.min()}, {idx.max()}] of a {n}-element buffer")
    if len(idx) * item % task.handle.fifo.nbytes:
        errs.append(f"{what}: moves {len(idx) * item} B, not a whole number of {task.handle.fifo.nbytes} B objects")
    return errs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("design", type=Path)
    ap.add_argument("--fn", default="design")
    ap.add_argument("args", nargs="*", type=int)
    a = ap.parse_args(argv)
    errs, u = check_design(build(a.design, a.fn, *a.args))
    for e in errs:
        print("FAIL", e)
    print(f"{u.cores} cores, {u.columns} columns")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())

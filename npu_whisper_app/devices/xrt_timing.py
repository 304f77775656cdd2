"""Per-(head, query tile) attention times from the NPU's own cycle counters.

Mechanism: the attention design (``kernels/attention/attention.py``, ``kernels/aie2/mha.cc``)
writes a 65th row after each 64-row output tile. Its first words (little-endian u32) are
the core's cycle counter (``aie::tile::current().cycles()``, a 64-bit counter of the AIE
array clock) read when the core begins the (head, query tile) and when it ends it, then the
core's column and row and the magic ``0x4d484131`` ("MHA1")::

    word 0, 1: start cycles (lo, hi)   word 2, 3: end cycles (lo, hi)
    word 4: column   word 5: row   word 6: MHA1

Why counters and not the AIE trace unit: they need no trace buffer, no trace routing
(one more DMA channel per column, which the attention design has no room for) and no
packet parser; one row per tile costs 128 bytes of output.

Cycles -> ns with the clock the driver reports: XRT's ``xrt::device::get_info<
xrt::info::device::platform>`` (pyxrt ``device.get_info(xrt_info_device.platform)``) is a
JSON whose ``clocks`` come from ``query::clock_freq_topology_raw`` (XRT
``core/common/info_platform.cpp`` ``add_clock_info``); on amdxdna that query is answered by
``DRM_AMDXDNA_QUERY_CLOCK_METADATA`` with the MP-NPU clock and the **H clock**, in MHz
(amd/xdna-driver ``src/shim/device.cpp`` @004a626a, ``struct clock_topology``). The H
clock is the AIE array's clock, so it is the one used. The clock can change with the
power mode between runs; it is read once per device here (query it around runs if that
matters). **Not verified on hardware**: the JSON path and that the H clock is the cores'
counter clock are read from the sources, not measured.

Alignment: each core's counter is its own (the design does not broadcast a timer-sync
event), so tiles are placed on the host's timeline per core, relative to that core's first
start in the run, from the host time the run was started. Durations are exact counter
differences.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

MHA_MAGIC = 0x4D484131
DEFAULT_AIE_CLOCK_HZ = 1.0e9  # used only when the driver reports no clock (then said so in the details)


@dataclass(frozen=True)
class TileTiming:
    head: int
    tile: int
    start_cycles: int
    end_cycles: int
    col: int
    row: int

    @property
    def cycles(self) -> int:
        return self.end_cycles - self.start_cycles


def parse_counter_rows(rows: np.ndarray) -> list[TileTiming]:
    """``rows[H, n_tiles, d]`` (the bf16 65th rows, as uint16) -> one :class:`TileTiming` each."""
    h, nt, d = rows.shape
    words = np.ascontiguousarray(rows).view(np.uint32).reshape(h, nt, d // 2)
    bad = words[..., 6] != MHA_MAGIC
    if bad.any():
        hh, tt = np.argwhere(bad)[0]
        raise ValueError(f"attention timing row of head {hh}, tile {tt} has no MHA1 marker "
                         f"(0x{int(words[hh, tt, 6]):08x}): output layout and design disagree")
    start = words[..., 0].astype(np.uint64) | (words[..., 1].astype(np.uint64) << np.uint64(32))
    end = words[..., 2].astype(np.uint64) | (words[..., 3].astype(np.uint64) << np.uint64(32))
    out = []
    for i in range(h):
        for j in range(nt):
            out.append(TileTiming(i, j, int(start[i, j]), int(end[i, j]), int(words[i, j, 4]), int(words[i, j, 5])))
    return out


def clock_from_platform(text: str) -> tuple[float, str] | None:
    """``(hz, clock name)`` of the AIE array clock from the platform JSON, or None."""
    try:
        data: Any = json.loads(text)
    except Exception:
        return None
    clocks: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "clocks" and isinstance(v, list):
                    clocks.extend(c for c in v if isinstance(c, dict))
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data)
    parsed = []
    for c in clocks:
        try:
            mhz = float(str(c.get("freq_mhz", "")).split()[0])
        except (ValueError, IndexError):
            continue
        if mhz > 0:
            parsed.append((str(c.get("id", "")), mhz))
    for name, mhz in parsed:  # the AIE array clock
        if re.search(r"\bh[ _-]?cl(oc)?k\b", name, re.I):
            return mhz * 1e6, name
    return None


def tile_events(timings: Iterable[TileTiming], clock_hz: float, host_start_ns: int,
                keep: Any = None) -> list[tuple[int, int, int, int, tuple[int, int], int]]:
    """``(head, tile, start_ns, end_ns, (col, row), cycles)`` per tile on the host timeline
    (see the module doc for the alignment); ``keep(head, tile)`` filters (e.g. padding tiles)."""
    timings = list(timings)
    first: dict[tuple[int, int], int] = {}
    for t in timings:
        key = (t.col, t.row)
        first[key] = min(first.get(key, t.start_cycles), t.start_cycles)
    ns_per_cycle = 1e9 / clock_hz
    out = []
    for t in timings:
        if keep is not None and not keep(t.head, t.tile):
            continue
        base = first[(t.col, t.row)]
        s = host_start_ns + round((t.start_cycles - base) * ns_per_cycle)
        e = host_start_ns + round((t.end_cycles - base) * ns_per_cycle)
        out.append((t.head, t.tile, s, e, (t.col, t.row), t.cycles))
    return out

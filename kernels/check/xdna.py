"""The amdxdna driver's hardware-context admission, as a pure function (for the design check
and, next, the pyxrt stand-in).

drivers/accel/amdxdna: ``npu1_regs.c`` (``hwctx_limit = 6``, ``first_col = 1``,
``col_align = COL_ALIGN_NONE``); ``aie2_ctx.c`` ``aie2_hwctx_col_list()`` offers every start
column for the requested width; ``aie2_solver.c`` ``get_free_partition()`` takes the first range
that overlaps no occupied column, and ``allocate_partition()`` otherwise shares an existing
partition with exactly the same start and width; past ``hwctx_limit`` contexts creation fails.
"""
from __future__ import annotations

from .limits import ArrayLimits


class ContextRefused(RuntimeError):
    pass


def admit(widths: list[int], lim: ArrayLimits) -> list[tuple[int, int]]:
    """(start column, width) per context in creation order, or :class:`ContextRefused`."""
    placed: list[tuple[int, int]] = []
    first, last = lim.first_col, lim.first_col + lim.cols  # physical columns [first, last)
    for i, w in enumerate(widths):
        if len(placed) >= lim.hwctx_limit:
            raise ContextRefused(f"context {i + 1}: the driver allows {lim.hwctx_limit} hardware contexts on {lim.generation}")
        busy = {c for s, n in placed for c in range(s, s + n)}
        free = [s for s in range(first, last - w + 1) if not busy & set(range(s, s + w))]
        if free:
            placed.append((free[0], w))
            continue
        same = [p for p in placed if p[1] == w]
        if not same:
            raise ContextRefused(f"context {i + 1}: no free {w}-column range and no {w}-column partition to share")
        placed.append(same[0])
    return placed

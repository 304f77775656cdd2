"""Summaries of a job's timing events: per op, per layer, per window, and a terminal table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .events import TimingEvent, op_category


@dataclass(slots=True)
class OpSummary:
    """One op's totals over a set of events."""

    op: str
    category: str
    count: int
    total_ms: float
    flops: int
    bytes: int

    @property
    def gflops_per_s(self) -> float:
        return self.flops / (self.total_ms * 1e6) if self.total_ms > 0 else 0.0


def summarize_by_op(events: Iterable[TimingEvent]) -> list[OpSummary]:
    """Total time, count, flops and bytes per op, slowest first."""
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for e in events:
        a = acc[e.op]
        a[0] += 1
        a[1] += e.end_ns - e.start_ns
        a[2] += e.flops
        a[3] += e.bytes
    rows = [OpSummary(op, op_category(op), c, ns / 1e6, f, b) for op, (c, ns, f, b) in acc.items()]
    return sorted(rows, key=lambda r: -r.total_ms)


def summarize_by_layer(events: Iterable[TimingEvent]) -> dict[int, dict[str, float]]:
    """layer -> category -> milliseconds."""
    out: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        out[e.layer][op_category(e.op)] += (e.end_ns - e.start_ns) / 1e6
    return {layer: dict(cats) for layer, cats in sorted(out.items())}


def summary_dict(events: Sequence[TimingEvent]) -> dict:
    """A JSON-ready summary: totals, per op, per layer, per window."""
    per_window: dict[int, float] = defaultdict(float)
    for e in events:
        per_window[e.window] += (e.end_ns - e.start_ns) / 1e6
    devices = sorted({e.device for e in events})
    return {
        "events": len(events),
        "devices": devices,
        "dispatch_ms": sum(e.end_ns - e.start_ns for e in events) / 1e6,
        "flops": sum(e.flops for e in events),
        "per_window_ms": {str(w): ms for w, ms in sorted(per_window.items())},
        "per_op": [
            {
                "op": r.op,
                "category": r.category,
                "count": r.count,
                "total_ms": round(r.total_ms, 4),
                "gflops_per_s": round(r.gflops_per_s, 3),
                "flops": r.flops,
                "bytes": r.bytes,
            }
            for r in summarize_by_op(events)
        ],
        "per_layer_ms": {str(k): {c: round(v, 4) for c, v in d.items()} for k, d in summarize_by_layer(events).items()},
    }


def format_op_table(events: Sequence[TimingEvent]) -> str:
    """A plain-text per-op table for the terminal."""
    rows = summarize_by_op(events)
    total = sum(r.total_ms for r in rows) or 1.0
    lines = [f"{'op':<12} {'category':<12} {'count':>7} {'ms':>10} {'share':>7} {'GFLOP/s':>9}"]
    for r in rows:
        lines.append(
            f"{r.op:<12} {r.category:<12} {r.count:>7} {r.total_ms:>10.2f} {100 * r.total_ms / total:>6.1f}% {r.gflops_per_s:>9.1f}"
        )
    return "\n".join(lines)

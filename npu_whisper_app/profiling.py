"""Timing events for every kernel dispatch, a recorder that batches them to listeners,
and the summaries/exports built from them.

The numbers here come only from the monotonic clock read around real work
(``time.perf_counter_ns``); nothing is estimated.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

now_ns = time.perf_counter_ns

# Op name -> category shown in the plots (stacked bars per layer).
OP_CATEGORIES: dict[str, str] = {
    "conv1": "conv stem",
    "conv2": "conv stem",
    "conv1_gelu": "conv stem",
    "conv2_gelu": "conv stem",
    "im2col": "conv stem",
    "pos_add": "conv stem",
    "ln1": "norms",
    "ln2": "norms",
    "ln_post": "norms",
    "qkv": "projections",
    "q_proj": "projections",
    "k_proj": "projections",
    "v_proj": "projections",
    "out_proj": "projections",
    "attention": "attention",
    "attention_io": "attention",  # moving q/k/v into the layout the tiles read (xrt: upload and read-back; cpu: per-head K/V copy)
    "fc1": "mlp",
    "fc1_gelu": "mlp",
    "gelu": "mlp",
    "fc2": "mlp",
    "residual1": "residual",
    "residual2": "residual",
}
CATEGORIES: tuple[str, ...] = ("conv stem", "norms", "projections", "attention", "mlp", "residual", "other")


def op_category(op: str) -> str:
    """The plot category of an op name (unknown ops are 'other')."""
    return OP_CATEGORIES.get(op, "other")


@dataclass(slots=True)
class TimingEvent:
    """One timed kernel dispatch.

    ``layer`` is the encoder block index, -1 for the conv stem and ``n_layers`` for
    ``ln_post``. ``head``/``tile`` are set for attention tiles (tile = query-tile index).
    """

    window: int
    layer: int
    op: str
    device: str
    start_ns: int
    end_ns: int
    flops: int = 0
    bytes: int = 0
    head: int | None = None
    tile: int | None = None
    #: (column, row) of the AIE core that ran it, when the device reports it (xrt attention tiles)
    core: tuple[int, int] | None = None

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def to_dict(self) -> dict:
        return asdict(self)


Listener = Callable[[list[TimingEvent]], None]


class Recorder:
    """Collects timing events and hands them, in batches, to listeners.

    Devices call :meth:`record` per dispatch (cheap: one append and one integer
    comparison). :meth:`flush` sends the events gathered since the last flush to every
    listener. Besides the encoder's flush after each layer, :meth:`record` flushes by
    itself once ``flush_every_s`` has passed since the last flush (measured with the
    dispatch's own end time, so no extra clock read), which keeps live views fed
    several times a second even inside a long layer.

    Thread-safe: dispatches may be recorded from several threads (attention tiles run
    on a pool). Appends need no lock (``list.append`` is atomic); a flush takes the
    events present when it starts (slice + delete, both atomic) under a lock, and a
    flush triggered from :meth:`record` skips instead of waiting when another thread is
    flushing. Listeners are called under the lock, so batches arrive in order.
    """

    def __init__(self, keep: bool = True, flush_every_s: float | None = 0.05) -> None:
        self.keep = keep
        self.events: list[TimingEvent] = []
        self._pending: list[TimingEvent] = []
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.window = 0
        self.layer = -1
        self.enabled = True
        self.flush_every_ns = int(flush_every_s * 1e9) if flush_every_s else 0
        self._last_flush = now_ns()

    # -- context set by the encoder graph -------------------------------------------
    def set_context(self, window: int | None = None, layer: int | None = None) -> None:
        if window is not None:
            self.window = window
        if layer is not None:
            self.layer = layer

    # -- producing -------------------------------------------------------------------
    def record(
        self,
        op: str,
        device: str,
        start_ns: int,
        end_ns: int,
        flops: int = 0,
        nbytes: int = 0,
        head: int | None = None,
        tile: int | None = None,
        core: tuple[int, int] | None = None,
    ) -> None:
        if not self.enabled:
            return
        self._pending.append(
            TimingEvent(self.window, self.layer, op, device, start_ns, end_ns, flops, nbytes, head, tile, core)
        )
        if self.flush_every_ns and end_ns - self._last_flush >= self.flush_every_ns:
            self.flush(wait=False)

    def flush(self, wait: bool = True) -> None:
        """Hand the pending events to the listeners; with ``wait=False`` return at once
        if another thread is flushing (its events are then sent by that flush or the next)."""
        if not self._lock.acquire(blocking=wait):
            return
        try:
            self._last_flush = now_ns()
            n = len(self._pending)
            if not n:
                return
            batch = self._pending[:n]
            del self._pending[:n]  # events appended meanwhile (other threads) stay pending
            if self.keep:
                self.events.extend(batch)
            for i, listener in enumerate(self._listeners):
                listener(batch if i == 0 else list(batch))
        finally:
            self._lock.release()

    # -- consuming -------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
            self._pending.clear()
            self.window = 0
            self.layer = -1

    def snapshot(self) -> list[TimingEvent]:
        with self._lock:
            return list(self.events)


class NullRecorder(Recorder):
    """A recorder that drops everything (for measuring the cost of recording)."""

    def __init__(self) -> None:
        super().__init__(keep=False)
        self.enabled = False


# ---------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class OpSummary:
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


def attention_tile_matrix(events: Iterable[TimingEvent], layer: int | None = None) -> dict[tuple[int, int], float]:
    """(head, query tile) -> milliseconds, for one layer or summed over all layers."""
    out: dict[tuple[int, int], float] = defaultdict(float)
    for e in events:
        if e.head is None or e.tile is None:
            continue
        if layer is not None and e.layer != layer:
            continue
        out[(e.head, e.tile)] += (e.end_ns - e.start_ns) / 1e6
    return dict(out)


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


def export_json(events: Sequence[TimingEvent], path: str | Path, extra: dict | None = None) -> None:
    """Write every event and the summary to a JSON file."""
    payload = {
        "summary": summary_dict(events),
        "events": [e.to_dict() for e in events],
    }
    if extra:
        payload.update(extra)
    Path(path).write_text(json.dumps(payload, indent=1))


# ---------------------------------------------------------------------------------------
# Live aggregation (for views that receive batches while the encoder runs)
# ---------------------------------------------------------------------------------------


def assign_lanes(events: Sequence[TimingEvent]) -> list[int]:
    """Lane per event (same order as ``events``) so that events in one lane never overlap.

    Greedy interval colouring per device: overlapping dispatches (attention tiles on
    several threads) get separate lanes; lane numbers are per device, from 0.
    """
    order = sorted(range(len(events)), key=lambda i: events[i].start_ns)
    lanes = [0] * len(events)
    free_at: dict[str, list[int]] = defaultdict(list)  # device -> end_ns of each lane
    for i in order:
        e = events[i]
        ends = free_at[e.device]
        for lane, end in enumerate(ends):
            if end <= e.start_ns:
                ends[lane] = e.end_ns
                lanes[i] = lane
                break
        else:
            ends.append(e.end_ns)
            lanes[i] = len(ends) - 1
    return lanes


@dataclass(slots=True)
class TimelineBar:
    """One dispatch placed on a timeline: lane label, ms from the window's start, category."""

    lane: str
    start_ms: float
    end_ms: float
    category: str
    op: str


class LiveProfile:
    """Running aggregates of one job's timing events, fed batch by batch (Qt-free).

    Keeps per layer × category milliseconds and per (head, tile) attention times for
    the whole job and for the window being encoded, per-window wall time, per-op
    flops/time, and the current window's dispatches already laned for a timeline
    (:meth:`timeline_arrays`, built incrementally so a redraw costs no per-event work).
    ``version`` grows with every batch so views can redraw only when something changed.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.version = 0
        self.n_events = 0
        self.window: int | None = None
        self.window_events: list[TimingEvent] = []
        self.windows: dict[int, list[int]] = {}  # window -> [first start_ns, last end_ns]
        self.devices: set[str] = set()
        self._layer_job: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._layer_win: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._tiles_job: dict[tuple[int, int, int], float] = defaultdict(float)  # (layer, head, tile)
        self._tiles_win: dict[tuple[int, int, int], float] = defaultdict(float)
        self._op: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # op -> [ns, flops]
        self._new_window_timeline()

    def _new_window_timeline(self) -> None:
        self._lane_ends: dict[str, list[int]] = {}  # device -> end_ns of each lane
        self._lane_rows: dict[str, int] = {}  # lane label -> row id (order of appearance)
        # category -> [start_ns list, end_ns list, row list]
        self._tl: dict[str, tuple[list[int], list[int], list[int]]] = {c: ([], [], []) for c in CATEGORIES}
        self._t0: int | None = None
        self._t_end = 0

    def _place(self, e: TimingEvent, cat: str) -> None:
        """Put a dispatch of the current window on the first lane of its device that is
        free at its start (greedy, in arrival order: lanes never overlap)."""
        ends = self._lane_ends.get(e.device)
        if ends is None:
            ends = self._lane_ends[e.device] = []
        for lane, end in enumerate(ends):
            if end <= e.start_ns:
                ends[lane] = e.end_ns
                break
        else:
            ends.append(e.end_ns)
            lane = len(ends) - 1
        label = f"{e.device} #{lane}" if e.device != "host" else "host"
        row = self._lane_rows.get(label)
        if row is None:
            row = self._lane_rows[label] = len(self._lane_rows)
        starts, stops, rows = self._tl[cat]
        starts.append(e.start_ns)
        stops.append(e.end_ns)
        rows.append(row)
        if self._t0 is None or e.start_ns < self._t0:
            self._t0 = e.start_ns
        if e.end_ns > self._t_end:
            self._t_end = e.end_ns

    def add(self, batch: Iterable[TimingEvent]) -> None:
        for e in batch:
            if self.window is None or e.window != self.window:
                if self.window is None or e.window > self.window:
                    self.window = e.window
                    self.window_events = []
                    self._layer_win.clear()
                    self._tiles_win.clear()
                    self._new_window_timeline()
            ms = (e.end_ns - e.start_ns) / 1e6
            cat = OP_CATEGORIES.get(e.op, "other")
            self._layer_job[e.layer][cat] += ms
            op = self._op[e.op]
            op[0] += e.end_ns - e.start_ns
            op[1] += e.flops
            span = self.windows.get(e.window)
            if span is None:
                self.windows[e.window] = [e.start_ns, e.end_ns]
            else:
                if e.start_ns < span[0]:
                    span[0] = e.start_ns
                if e.end_ns > span[1]:
                    span[1] = e.end_ns
            self.devices.add(e.device)
            tiled = e.head is not None and e.tile is not None
            if tiled:
                self._tiles_job[(e.layer, e.head, e.tile)] += ms
            if e.window == self.window:
                self.window_events.append(e)
                self._layer_win[e.layer][cat] += ms
                if tiled:
                    self._tiles_win[(e.layer, e.head, e.tile)] += ms
                self._place(e, cat)
            self.n_events += 1
        self.version += 1

    # -- views ---------------------------------------------------------------------------
    def layers(self) -> list[int]:
        return sorted(self._layer_job)

    def layer_matrix(self, scope: str = "job") -> tuple[list[int], np.ndarray]:
        """(layers, ms[len(layers), len(CATEGORIES)]) for scope ``job`` or ``window``."""
        src = self._layer_win if scope == "window" else self._layer_job
        layers = sorted(src)
        out = np.zeros((len(layers), len(CATEGORIES)))
        for r, layer in enumerate(layers):
            for c, cat in enumerate(CATEGORIES):
                out[r, c] = src[layer].get(cat, 0.0)
        return layers, out

    def tile_matrix(self, scope: str = "job", layer: int | None = None) -> np.ndarray:
        """ms[heads, query tiles] for one layer or summed over all (None)."""
        src = self._tiles_win if scope == "window" else self._tiles_job
        if not src:
            return np.zeros((0, 0))
        heads = 1 + max(h for _, h, _ in src)
        tiles = 1 + max(t for _, _, t in src)
        out = np.zeros((heads, tiles))
        for (lay, h, t), ms in src.items():
            if layer is None or lay == layer:
                out[h, t] += ms
        return out

    def attention_layers(self) -> list[int]:
        return sorted({lay for lay, _, _ in self._tiles_job})

    def window_ms(self) -> dict[int, float]:
        """Wall time of each window from its first dispatch's start to its last's end."""
        return {w: (s[1] - s[0]) / 1e6 for w, s in sorted(self.windows.items())}

    def op_rates(self) -> list[tuple[str, float, float]]:
        """(op, total ms, GFLOP/s) per op, slowest first."""
        rows = [(op, ns / 1e6, (fl / ns if ns else 0.0)) for op, (ns, fl) in self._op.items()]
        return sorted(rows, key=lambda r: -r[1])

    def timeline_arrays(self) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], float]:
        """The current window's dispatches ready to draw: (lane labels in display order,
        category -> (start ms, end ms, lane index) arrays, end of the last dispatch in ms).
        Times are from the window's first dispatch; device lanes first, ``host`` last."""
        labels = sorted(self._lane_rows, key=lambda s: (s == "host", s))
        if self._t0 is None:
            return labels, {}, 0.0
        remap = np.zeros(len(self._lane_rows), dtype=float)
        for i, label in enumerate(labels):
            remap[self._lane_rows[label]] = i
        t0 = self._t0
        out = {}
        for cat, (starts, stops, rows) in self._tl.items():
            if starts:
                n = len(rows)  # lists only grow (one thread adds): read each up to n
                out[cat] = (
                    (np.array(starts[:n], dtype=np.int64) - t0) / 1e6,
                    (np.array(stops[:n], dtype=np.int64) - t0) / 1e6,
                    remap[np.array(rows[:n], dtype=np.intp)],
                )
        return labels, out, (self._t_end - t0) / 1e6

    def timeline(self) -> list[TimelineBar]:
        """The current window's dispatches, laned so overlapping ones do not collide."""
        events = self.window_events
        if not events:
            return []
        t0 = min(e.start_ns for e in events)
        lanes = assign_lanes(events)
        return [
            TimelineBar(
                f"{e.device} #{lane}" if e.device != "host" else "host",
                (e.start_ns - t0) / 1e6,
                (e.end_ns - t0) / 1e6,
                op_category(e.op),
                e.op,
            )
            for e, lane in zip(events, lanes)
        ]

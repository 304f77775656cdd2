"""Running aggregates of a job's timing events for live views (Qt-free)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from .events import CATEGORIES, OP_CATEGORIES, TimingEvent


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

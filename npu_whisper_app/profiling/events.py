"""Timing events for every kernel dispatch and the recorder that batches them to listeners.

The numbers here come only from the monotonic clock read around real work
(``time.perf_counter_ns``); nothing is estimated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

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
    ) -> None:
        if not self.enabled:
            return
        self._pending.append(
            TimingEvent(self.window, self.layer, op, device, start_ns, end_ns, flops, nbytes, head, tile)
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

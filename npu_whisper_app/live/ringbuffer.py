"""A fixed-capacity ring of float32 samples addressed by absolute sample index.

The writer (the audio side) only copies into the ring under a short lock; readers copy
ranges out. Samples older than ``capacity`` are overwritten; reading them raises.
"""

from __future__ import annotations

import threading

import numpy as np


class RingBuffer:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, np.float32)
        self._end = 0  # absolute index one past the newest sample
        self._lock = threading.Lock()

    @property
    def end(self) -> int:
        """Total samples written so far (absolute index of the next sample)."""
        return self._end

    @property
    def start(self) -> int:
        """Oldest absolute index still held."""
        return max(0, self._end - self.capacity)

    def write(self, block: np.ndarray) -> int:
        """Append ``block``; returns the new end. Never blocks for long."""
        block = np.asarray(block, np.float32).reshape(-1)
        n = block.size
        if n == 0:
            return self._end
        with self._lock:
            if n >= self.capacity:
                block = block[-self.capacity :]
                self._end += n - self.capacity
                n = self.capacity
            pos = self._end % self.capacity
            first = min(n, self.capacity - pos)
            self._buf[pos : pos + first] = block[:first]
            if first < n:
                self._buf[: n - first] = block[first:]
            self._end += n
            return self._end

    def read(self, start: int, end: int | None = None) -> np.ndarray:
        """Copy of samples ``[start, end)`` (absolute indices)."""
        with self._lock:
            if start < max(0, self._end - self.capacity):
                raise IndexError(f"samples from {start} are no longer in the ring (oldest {self._end - self.capacity})")
            return self._copy(start, end)

    def read_clamped(self, start: int, end: int | None = None) -> tuple[int, np.ndarray]:
        """``(first, samples [first, end))`` with ``first`` = ``start`` or, where that was
        overwritten already, the oldest sample held: in one step, so a writer running
        ahead between checking and reading cannot make it fail."""
        with self._lock:
            first = max(start, self._end - self.capacity, 0)
            return first, self._copy(first, end)

    def _copy(self, start: int, end: int | None) -> np.ndarray:
        """Samples ``[start, end)``, ``start`` still held; call under the lock."""
        end = self._end if end is None else min(end, self._end)
        if end <= start:
            return np.zeros(0, np.float32)
        n = end - start
        pos = start % self.capacity
        first = min(n, self.capacity - pos)
        out = np.empty(n, np.float32)
        out[:first] = self._buf[pos : pos + first]
        if first < n:
            out[first:] = self._buf[: n - first]
        return out

"""A streaming 16-bit PCM WAV writer whose header stays valid while it grows.

The header's sizes are rewritten at every :meth:`flush`, so a recording survives a
crash of anything that runs after it: what was flushed is a playable file.
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import numpy as np

from . import SAMPLE_RATE

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


class WavWriter:
    def __init__(self, path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, channels: int = 1, flush_every_s: float = 0.5) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sample_rate = sample_rate
        self.channels = channels
        self.frames = 0
        self._unflushed = 0
        self._flush_frames = int(flush_every_s * sample_rate)
        self._lock = threading.Lock()
        self._f = open(self.path, "wb")
        self._write_header()

    def _write_header(self) -> None:
        data_bytes = self.frames * self.channels * 2
        self._f.write(
            _HEADER.pack(
                b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, self.channels, self.sample_rate,
                self.sample_rate * self.channels * 2, self.channels * 2, 16, b"data", data_bytes,
            )
        )

    def write(self, samples: np.ndarray) -> None:
        """Append float samples in [-1, 1] (shape ``[n]`` or ``[n, channels]``)."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
        with self._lock:
            if self._f.closed:
                return
            self._f.write(pcm.tobytes())
            n = pcm.shape[0] if pcm.ndim > 1 else pcm.size // self.channels
            self.frames += n
            self._unflushed += n
            if self._unflushed >= self._flush_frames:
                self._flush_locked()

    def _flush_locked(self) -> None:
        pos = self._f.tell()
        self._f.seek(0)
        self._write_header()
        self._f.seek(pos)
        self._f.flush()
        os.fsync(self._f.fileno())
        self._unflushed = 0

    def flush(self) -> None:
        with self._lock:
            if not self._f.closed:
                self._flush_locked()

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    def close(self) -> None:
        with self._lock:
            if not self._f.closed:
                self._flush_locked()
                self._f.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

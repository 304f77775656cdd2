"""What a job carries through the engine: its context (what to stop on, how to trim the
encoded window, where progress and segments go) and the one ``Cancelled`` exception.

The context is handed to the encoder and the decoder for the duration of one job
(``with encoder.job(ctx): ...``), never set as attributes from outside and reset after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from .audio import SAMPLE_RATE

ProgressFn = Callable[[float, float], None]  # (seconds done, seconds total)
SegmentFn = Callable[[dict], None]  # one finished openai-whisper segment dict


class Cancelled(Exception):
    """The job was asked to stop (raised between encoder dispatches, decoded tokens or
    windows, wherever ``JobContext.check_stop`` is called)."""


@dataclass(frozen=True)
class JobContext:
    """Per-job values that the encoder and the decoder read while the job runs.

    ``trim``: ``(min_frames, margin_frames)`` to encode each window only over its
    audio (see ``model.encoder.trimmed_frames``); None encodes the full window.
    ``between_windows``: called by the transcribe loop after each window, on the
    engine's thread (the engine's owner runs waiting urgent work there, e.g. a
    dictation final during a long file job).
    """

    should_stop: Callable[[], bool] | None = None
    trim: tuple[int, int] | None = None
    on_progress: ProgressFn | None = None
    on_segment: SegmentFn | None = None
    between_windows: Callable[[], None] | None = None

    def stop_requested(self) -> bool:
        return self.should_stop is not None and bool(self.should_stop())

    def check_stop(self) -> None:
        if self.stop_requested():
            raise Cancelled()

    def replace(self, **changes: object) -> JobContext:
        return replace(self, **changes)  # type: ignore[arg-type]


#: the context of no job: nothing to stop on, the full window, nobody listening
IDLE = JobContext()


class MelSource(Protocol):
    """Log-mel frames of one recording, read a window at a time (so a long recording
    need not sit in memory whole). ``n_frames`` counts the audio's frames (without
    Whisper's 30 s of trailing padding); ``frames(start, end)`` returns
    ``[n_mels, end - start]`` float32, zero past the audio's end."""

    n_frames: int

    def frames(self, start: int, end: int) -> np.ndarray: ...


__all__ = ["Cancelled", "JobContext", "IDLE", "MelSource", "ProgressFn", "SegmentFn", "SAMPLE_RATE"]

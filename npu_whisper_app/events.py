"""The typed events the engine's owner thread reports through its one stream.

Every event is a fresh, frozen object; the GUI (or any caller) dispatches on the type.
Dictation's own events (``Partial``, ``Final``, ``Level`` and its ``Notice``) live in
``live/dictation.py`` and travel in the same stream in the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EngineLoading:
    model: str
    device: str


@dataclass(frozen=True)
class EngineReady:
    model: str
    device: str
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineFailed:
    message: str


@dataclass(frozen=True)
class JobStarted:
    job_id: int
    source: str


@dataclass(frozen=True)
class Progress:
    job_id: int
    done_s: float
    total_s: float


@dataclass(frozen=True)
class Segment:
    job_id: int
    segment: dict = field(hash=False)


@dataclass(frozen=True)
class Timings:
    """A batch of :class:`~npu_whisper_app.profiling.TimingEvent` (after each encoder
    layer). ``job_id`` 0: work that is not a file job (a dictated utterance)."""

    job_id: int
    events: tuple[Any, ...]


@dataclass(frozen=True)
class JobFinished:
    job_id: int
    result: Any  # TranscriptResult


@dataclass(frozen=True)
class JobFailed:
    job_id: int
    message: str  # one line


@dataclass(frozen=True)
class EngineNotice:
    message: str

"""The GUI's handle on the engine's owner thread (:class:`~npu_whisper_app.engine_host.EngineHost`).

The host (no Qt) owns the one Engine (model + device) of the app and runs file jobs and
dictation decodes on its thread; it reports through one stream of typed events
(``events.py``). :class:`EventBridge` turns that stream into Qt signals (queued into the
GUI thread). Cancel is a ``threading.Event`` per job (read by the encoder between
dispatches), so it works while the owner is busy. Everything emitted is a fresh object.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from .. import events as ev
from ..engine_host import EngineChoice, EngineHost
from ..engine_host import FileJob as Job

log = logging.getLogger(__name__)

__all__ = ["EventBridge", "Job", "WorkerHost", "source_name", "tune_worker_thread"]


def tune_worker_thread() -> None:
    """Keep the UI responsive on small machines: torch leaves a core for the UI thread
    (``NPU_WHISPER_TORCH_THREADS`` overrides); ``NPU_WHISPER_WORKER_NICE`` lowers the
    worker's OS priority (off by default: it made GIL hand-offs slower in measurements)."""
    # hand the GIL over more often: the UI thread waits at most ~1 ms per hand-off
    sys.setswitchinterval(float(os.environ.get("NPU_WHISPER_SWITCH_INTERVAL", "0.001")))
    nice = int(os.environ.get("NPU_WHISPER_WORKER_NICE", "0"))
    if nice and hasattr(os, "setpriority"):
        try:  # Linux: niceness is per thread; threads started from here inherit it
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:
            pass
    threads = os.environ.get("NPU_WHISPER_TORCH_THREADS")
    n = int(threads) if threads else max(1, (os.cpu_count() or 1) - 1)
    try:
        import torch

        torch.set_num_threads(n)
    except Exception:
        log.warning("could not set torch threads to %s", n)


class EventBridge(QObject):
    """The host's event stream as Qt signals (emitted from the owner thread, delivered
    queued in the GUI thread)."""

    engine_loading = Signal(str, str)  # model, device
    engine_ready = Signal(object)  # {"model", "device", "notices"}
    engine_failed = Signal(str)
    job_started = Signal(int, str)  # job id, source
    progress = Signal(int, float, float)  # job id, seconds done, seconds total
    segment = Signal(int, object)  # job id, one finished segment
    timings = Signal(int, object)  # job id (0: dictation), batch of TimingEvent
    job_finished = Signal(int, object)  # job id, TranscriptResult
    job_failed = Signal(int, str)  # job id, one-line reason
    notice = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.host: EngineHost | None = None

    @property
    def send_timings(self) -> bool:
        return self.host.send_timings if self.host is not None else True

    @send_timings.setter
    def send_timings(self, on: bool) -> None:
        if self.host is not None:
            self.host.send_timings = on

    def dispatch(self, e: object) -> None:  # the owner thread
        if isinstance(e, ev.Timings):
            self.timings.emit(e.job_id, list(e.events))
        elif isinstance(e, ev.Progress):
            self.progress.emit(e.job_id, e.done_s, e.total_s)
        elif isinstance(e, ev.Segment):
            self.segment.emit(e.job_id, dict(e.segment))
        elif isinstance(e, ev.JobStarted):
            self.job_started.emit(e.job_id, e.source)
        elif isinstance(e, ev.JobFinished):
            self.job_finished.emit(e.job_id, e.result)
        elif isinstance(e, ev.JobFailed):
            self.job_failed.emit(e.job_id, e.message)
        elif isinstance(e, ev.EngineLoading):
            self.engine_loading.emit(e.model, e.device)
        elif isinstance(e, ev.EngineReady):
            self.engine_ready.emit({"model": e.model, "device": e.device, "notices": list(e.notices)})
        elif isinstance(e, ev.EngineFailed):
            self.engine_failed.emit(e.message)
        elif isinstance(e, ev.EngineNotice):
            self.notice.emit(e.message)


_tuned = threading.local()


def _tune_once() -> None:
    if not getattr(_tuned, "done", False):
        tune_worker_thread()
        _tuned.done = True


class WorkerHost(QObject):
    """GUI-side handle: submits jobs, cancels, gives dictation its view of the engine,
    shuts down. ``worker`` carries the signals."""

    def __init__(self, engine_factory: Callable[..., Any] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = EventBridge()
        self.engine_host = EngineHost(engine_factory, on_event=self.worker.dispatch, on_thread_start=_tune_once)
        self.worker.host = self.engine_host
        self.pending: dict[int, Job] = {}
        self.current: Job | None = None
        self.worker.job_started.connect(self._on_started)
        self.worker.job_finished.connect(self._on_done)
        self.worker.job_failed.connect(self._on_done)

    def submit(self, job: Job) -> Job:
        self.pending[job.id] = job
        self.engine_host.run_job(job)
        return job

    def preload(self, model: str, device: str) -> None:
        self.engine_host.load(model, device)

    def dictation_engine(self, choices: Callable[[], Any]) -> EngineChoice:
        """What the dictation tab decodes with: this host's engine, for ``choices()``."""
        return EngineChoice(self.engine_host, choices)

    def cancel(self, all_jobs: bool = False) -> bool:
        """Stop the running job (and the queued ones with ``all_jobs``); True if any."""
        targets = list(self.pending.values()) if all_jobs else ([self.current] if self.current else list(self.pending.values())[:1])
        for job in targets:
            if job is not None:
                job.cancel.set()
        return bool(targets)

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def _on_started(self, job_id: int, _source: str) -> None:
        self.current = self.pending.get(job_id)

    def _on_done(self, job_id: int, _payload: object) -> None:
        self.pending.pop(job_id, None)
        if self.current is not None and self.current.id == job_id:
            self.current = None

    def shutdown(self, timeout_ms: int = 10000) -> None:
        for job in self.pending.values():
            job.cancel.set()
        self.engine_host.close(timeout_ms / 1000)


def source_name(path: str) -> str:
    return Path(path).name

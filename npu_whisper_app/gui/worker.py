"""The worker thread: owns the Engine (model + device) and runs jobs one after another.

The GUI talks to :class:`WorkerHost` only. Jobs travel to the worker through a queued
signal, so they wait in the worker thread's event queue while another runs. Cancel is a
``threading.Event`` per job (read by the encoder between dispatches), so it works while
the worker is busy. Everything emitted to the GUI is a fresh object.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..pipeline import TranscribeOptions

log = logging.getLogger(__name__)

_ids = itertools.count(1)


@dataclass
class Job:
    """One transcription: a file (a recording is a file too) with the choices to use."""

    source: str
    model: str = "base"
    device: str = "auto"
    options: TranscribeOptions = field(default_factory=TranscribeOptions)
    kind: str = "file"  # "file" or "recording"
    id: int = field(default_factory=lambda: next(_ids))
    cancel: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)


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


def _default_engine_factory(model: str, device: str, on_notice: Callable[[str], None]) -> Any:
    from ..pipeline import Engine

    return Engine(model=model, device=device, on_notice=on_notice)


class TranscriptionWorker(QObject):
    """Lives on the worker thread. Slots run there; signals reach the GUI queued."""

    engine_loading = Signal(str, str)  # model, device
    engine_ready = Signal(object)  # {"model", "device", "notices"}
    engine_failed = Signal(str)
    job_started = Signal(int, str)  # job id, source
    progress = Signal(int, float, float)  # job id, seconds done, seconds total
    segment = Signal(int, object)  # job id, one finished segment
    timings = Signal(int, object)  # job id, batch of TimingEvent (after each encoder layer)
    job_finished = Signal(int, object)  # job id, TranscriptResult
    job_failed = Signal(int, str)  # job id, one-line reason
    notice = Signal(str)

    def __init__(self, engine_factory: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self._factory = engine_factory or _default_engine_factory
        self.engine: Any = None
        self._engine_key: tuple[str, str] | None = None
        self._job_id = 0
        self.send_timings = True
        self._tuned = False

    # -- engine ------------------------------------------------------------------------
    def _ensure_engine(self, model: str, device: str) -> Any:
        if not self._tuned:
            tune_worker_thread()
            self._tuned = True
        key = (model, device)
        if self.engine is not None and self._engine_key == key:
            return self.engine
        self.engine_loading.emit(model, device)
        if self.engine is not None:
            try:
                self.engine.recorder.remove_listener(self._on_events)
                self.engine.close()
            except Exception:  # closing a broken device must not stop the next load
                log.exception("closing the previous engine failed")
            self.engine = None
            self._engine_key = None
        engine = self._factory(model, device, self.notice.emit)
        _warm_up(engine)
        engine.recorder.add_listener(self._on_events)
        self.engine, self._engine_key = engine, key
        self.engine_ready.emit({"model": engine.model_name, "device": engine.device_name, "notices": list(engine.notices)})
        return engine

    @Slot(str, str)
    def preload(self, model: str, device: str) -> None:
        """Load the model now (at start-up or when the choice changes), not at first job."""
        try:
            self._ensure_engine(model, device)
        except Exception as exc:
            log.exception("loading model %s on %s failed", model, device)
            self.engine_failed.emit(_one_line(exc))

    def _on_events(self, batch: list) -> None:  # encoder thread (this worker thread)
        if self.send_timings:
            self.timings.emit(self._job_id, list(batch))

    # -- jobs --------------------------------------------------------------------------
    @Slot(object)
    def run_job(self, job: Job) -> None:
        if job.cancel.is_set():
            self.job_failed.emit(job.id, "cancelled before it started")
            return
        self._job_id = job.id
        try:
            engine = self._ensure_engine(job.model, job.device)
        except Exception as exc:
            log.exception("loading model %s on %s failed", job.model, job.device)
            msg = _one_line(exc)
            self.engine_failed.emit(msg)
            self.job_failed.emit(job.id, f"cannot load model {job.model!r} on {job.device!r}: {msg}")
            return
        self.job_started.emit(job.id, job.source)
        engine.recorder.clear()  # a job's events are in its result; keep memory bounded
        jid = job.id
        try:
            result = engine.transcribe(
                job.source,
                replace(job.options),
                source=job.source,
                on_progress=lambda done, total: self.progress.emit(jid, float(done), float(total)),
                on_segment=lambda seg: self.segment.emit(jid, _plain(seg)),
                should_stop=job.cancel.is_set,
            )
        except Exception as exc:
            log.error("job %s (%s) failed:\n%s", job.id, job.source, traceback.format_exc())
            self.job_failed.emit(job.id, _one_line(exc))
            return
        self.job_finished.emit(job.id, result)

    @Slot()
    def shutdown(self) -> None:
        if self.engine is not None:
            try:
                self.engine.close()
            except Exception:
                log.exception("closing the engine failed")
            self.engine = None


def _warm_up(engine: Any) -> None:
    """Do once, at load, the first-use work that would otherwise hold the GIL for a
    hundred ms or more at the start of the first job (and freeze the UI meanwhile):
    building the tokenizer's BPE tables, importing PyAV and opening a decoder
    (``import av`` alone is ~120 ms), loading the mel filters and the first STFT."""
    try:
        from whisper.tokenizer import get_tokenizer

        model = engine.model
        get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
    except Exception:  # warm-up is an optimisation only
        log.debug("tokenizer warm-up skipped", exc_info=True)
    try:
        import tempfile
        import wave

        import numpy as np
        import whisper

        from ..audio.decode import load_audio

        with tempfile.TemporaryDirectory(prefix="npu-whisper-warmup-") as tmp:
            path = Path(tmp) / "warmup.wav"
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes(np.zeros(1600, "<i2").tobytes())
            audio = load_audio(path)
        whisper.log_mel_spectrogram(audio, engine.model.dims.n_mels, padding=16000)
    except Exception:
        log.debug("audio warm-up skipped", exc_info=True)
    try:
        # one short transcription: the first encoder/decoder pass builds torch's kernels
        # and caches while holding the GIL (~60 ms stalls); pay that here, not in a job
        import numpy as np

        from ..pipeline import TranscribeOptions

        t = np.arange(32000, dtype=np.float32) / 16000
        tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        engine.transcribe(tone, TranscribeOptions(language="en", temperature=(0.0,)))
        engine.recorder.clear()
    except Exception:
        log.debug("engine warm-up skipped", exc_info=True)


def _plain(seg: dict) -> dict:
    """A fresh copy of a segment with plain Python values (tensors/ndarrays -> lists)."""
    out = {}
    for k, v in seg.items():
        if hasattr(v, "tolist"):
            v = v.tolist()
        elif isinstance(v, list):
            v = [dict(x) if isinstance(x, dict) else x for x in v]
        out[k] = v
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


class WorkerHost(QObject):
    """GUI-side handle: starts the thread, submits jobs, cancels, shuts down."""

    _submit = Signal(object)
    _preload = Signal(str, str)

    def __init__(self, engine_factory: Callable[..., Any] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("transcription-worker")
        self.worker = TranscriptionWorker(engine_factory)
        self.worker.moveToThread(self.thread)
        self._submit.connect(self.worker.run_job)
        self._preload.connect(self.worker.preload)
        self.pending: dict[int, Job] = {}
        self.current: Job | None = None
        self.worker.job_started.connect(self._on_started)
        self.worker.job_finished.connect(self._on_done)
        self.worker.job_failed.connect(self._on_done)
        self.thread.start()

    def submit(self, job: Job) -> Job:
        self.pending[job.id] = job
        self._submit.emit(job)
        return job

    def preload(self, model: str, device: str) -> None:
        self._preload.emit(model, device)

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
        if self.thread.isRunning():
            from PySide6.QtCore import QMetaObject, Qt

            QMetaObject.invokeMethod(self.worker, "shutdown", Qt.ConnectionType.QueuedConnection)
            self.thread.quit()
            self.thread.wait(timeout_ms)


def source_name(path: str) -> str:
    return Path(path).name

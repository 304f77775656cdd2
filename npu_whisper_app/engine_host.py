"""One long-lived thread that owns the engine (model + device) and runs everything on it.

File jobs and dictated utterances share one :class:`~npu_whisper_app.pipeline.Engine`
(one model in memory, a device used from one thread only). Work arrives as calls
(:meth:`EngineHost.submit`); a dictation decode is *urgent*: when a file job is running
it runs between two of the job's 30 s windows instead of after the whole file. Everything
the host does is reported through one stream of typed events (``events.py``), so the GUI
needs one connection. No Qt here: the GUI wraps this host (``gui/worker.py``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from . import events as ev
from .jobs import Cancelled
from .live.decoder import Decoded, DecoderOptions
from .pipeline import TranscribeOptions

log = logging.getLogger(__name__)
T = TypeVar("T")
EventFn = Callable[[object], None]
EngineFactory = Callable[..., Any]  # (model, device, on_notice) -> Engine

_ids = itertools.count(1)


@dataclass
class FileJob:
    """One transcription: a file (a recording is a file too) with the choices to use."""

    source: str
    model: str = "base"
    device: str = "auto"
    options: TranscribeOptions = field(default_factory=TranscribeOptions)
    kind: str = "file"  # "file" or "recording"
    id: int = field(default_factory=lambda: next(_ids))
    cancel: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)


def default_engine_factory(model: str, device: str, on_notice: Callable[[str], None]) -> Any:
    from .pipeline import Engine

    return Engine(model=model, device=device, on_notice=on_notice)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def plain_segment(seg: dict) -> dict:
    """A fresh copy of a segment with plain Python values (tensors/ndarrays -> lists)."""
    out = {}
    for k, v in seg.items():
        if hasattr(v, "tolist"):
            v = v.tolist()
        elif isinstance(v, list):
            v = [dict(x) if isinstance(x, dict) else x for x in v]
        out[k] = v
    return out


class EngineHost:
    """Owns the engine on its own thread ``engine-owner``; see the module docstring.

    ``on_event`` is called from the owner thread with each event. ``on_thread_start``
    runs once on the owner thread first (the app tunes torch's threads there)."""

    def __init__(
        self,
        factory: EngineFactory | None = None,
        on_event: EventFn | None = None,
        on_thread_start: Callable[[], None] | None = None,
        warm_up: bool = True,
    ) -> None:
        self._factory = factory or default_engine_factory
        self._on_event = on_event
        self._on_thread_start = on_thread_start
        self._warm_up = warm_up
        self.engine: Any = None  # read it only from calls running on the owner thread
        self._key: tuple[str, str] | None = None
        self._job_id = 0  # the file job whose work runs now (0: none), tags timing batches
        self._in_file_job = False
        self.send_timings = True
        self._work: deque[tuple[Callable[[], Any], Future]] = deque()
        self._urgent: deque[tuple[Callable[[], Any], Future]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="engine-owner", daemon=True)
        self._thread.start()

    # -- the owner thread --------------------------------------------------------------
    def _emit(self, event: object) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a listener's failure must not stop the engine
                log.exception("event listener failed on %r", type(event).__name__)

    def _loop(self) -> None:
        if self._on_thread_start is not None:
            self._on_thread_start()
        while True:
            with self._cond:
                while not (self._urgent or self._work or self._closing):
                    self._cond.wait()
                if self._urgent:
                    item = self._urgent.popleft()
                elif self._work:
                    item = self._work.popleft()
                else:
                    break
            self._run(item)
        self._close_engine()

    @staticmethod
    def _run(item: tuple[Callable[[], Any], Future]) -> None:
        fn, fut = item
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn())
        except BaseException as exc:  # handed to the caller through the future
            fut.set_exception(exc)

    def _run_urgent(self) -> None:
        """Between two windows of a file job: run the dictation decodes waiting now."""
        while True:
            with self._cond:
                if not self._urgent:
                    return
                item = self._urgent.popleft()
            job_id, self._job_id = self._job_id, 0
            try:
                self._run(item)
            finally:
                self._job_id = job_id

    def _on_timings(self, batch: list) -> None:  # the owner thread (the encoder runs there)
        if self.send_timings:
            self._emit(ev.Timings(self._job_id, tuple(batch)))

    def _ensure(self, model: str, device: str) -> Any:
        key = (model, device)
        if self.engine is not None and self._key == key:
            return self.engine
        self._emit(ev.EngineLoading(model, device))
        self._close_engine()
        try:
            engine = self._factory(model, device, lambda m: self._emit(ev.EngineNotice(m)))
            if self._warm_up:
                try:
                    engine.warm_up()
                except Exception:  # warm-up is an optimisation only
                    log.debug("engine warm-up failed", exc_info=True)
        except Exception as exc:
            log.exception("loading model %s on %s failed", model, device)
            self._emit(ev.EngineFailed(one_line(exc)))
            raise
        engine.recorder.add_listener(self._on_timings)
        self.engine, self._key = engine, key
        self._emit(ev.EngineReady(engine.model_name, engine.device_name, tuple(engine.notices)))
        return engine

    def _close_engine(self) -> None:
        if self.engine is None:
            return
        try:
            self.engine.recorder.remove_listener(self._on_timings)
            self.engine.close()
        except Exception:  # closing a broken device must not stop the next load
            log.exception("closing the engine failed")
        self.engine, self._key = None, None

    def _file_job(self, job: FileJob) -> Any:
        if job.cancel.is_set():
            self._emit(ev.JobFailed(job.id, "cancelled before it started"))
            return None
        try:
            engine = self._ensure(job.model, job.device)
        except Exception as exc:
            self._emit(ev.JobFailed(job.id, f"cannot load model {job.model!r} on {job.device!r}: {one_line(exc)}"))
            return None
        self._emit(ev.JobStarted(job.id, job.source))
        engine.recorder.clear()  # a job's events are in its result; keep memory bounded
        self._job_id = jid = job.id
        self._in_file_job = True
        try:
            result = engine.transcribe(
                job.source,
                replace(job.options),
                source=job.source,
                on_progress=lambda done, total: self._emit(ev.Progress(jid, float(done), float(total))),
                on_segment=lambda seg: self._emit(ev.Segment(jid, plain_segment(seg))),
                should_stop=job.cancel.is_set,
                between_windows=self._run_urgent,
            )
        except Exception as exc:
            log.error("job %s (%s) failed:\n%s", job.id, job.source, traceback.format_exc())
            self._emit(ev.JobFailed(job.id, one_line(exc)))
            return None
        finally:
            self._job_id = 0
            self._in_file_job = False
        self._emit(ev.JobFinished(job.id, result))
        return result

    # -- any thread ------------------------------------------------------------------------
    def submit(self, fn: Callable[[Any], T], *, urgent: bool = False) -> Future[T]:
        """Run ``fn(engine)`` on the owner thread (the engine loaded last; None if none)."""
        fut: Future = Future()
        with self._cond:
            if self._closing:
                raise RuntimeError("the engine host is closed")
            (self._urgent if urgent else self._work).append((lambda: fn(self.engine), fut))
            self._cond.notify()
        return fut

    def load(self, model: str, device: str) -> Future[Any]:
        """Load ``model`` on ``device`` now (at start-up, or when the choice changes)."""
        return self.submit(lambda _e: self._ensure(model, device))

    def run_job(self, job: FileJob) -> Future[Any]:
        """Queue a file job; its events tell how it goes (the future holds the result)."""
        return self.submit(lambda _e: self._file_job(job))

    def decode_utterance(
        self,
        audio: np.ndarray,
        options: DecoderOptions | None = None,
        *,
        prompt: str | None = None,
        should_stop: Callable[[], bool] | None = None,
        partial: bool = False,
        model: str | None = None,
        device: str | None = None,
    ) -> Decoded:
        """``Engine.decode_utterance`` on the owner thread, ahead of file work (between
        its windows); blocks the calling thread until done. With ``model``/``device``
        that engine is loaded first; without, the one loaded last (``base`` on
        ``auto`` if none). Raises :class:`~npu_whisper_app.jobs.Cancelled`."""

        def run(engine: Any) -> Decoded:
            if should_stop is not None and should_stop():
                raise Cancelled()
            # between a file job's windows the job's engine serves (it cannot be swapped
            # under the job); otherwise the one asked for is loaded if it is not yet
            if not self._in_file_job and (model is not None or engine is None):
                engine = self._ensure(model or "base", device or "auto")
            return engine.decode_utterance(audio, options, prompt=prompt, should_stop=should_stop, partial=partial)

        return self.submit(run, urgent=True).result()

    def close(self, timeout: float = 30.0) -> None:
        """Finish the work queued, close the engine, end the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class EngineChoice:
    """A dictation decoder's view of the host: ``decode_utterance`` with the model and
    device that ``choices()`` names now (``.model``, ``.device``)."""

    def __init__(self, host: EngineHost, choices: Callable[[], Any]) -> None:
        self.host = host
        self.choices = choices

    def decode_utterance(self, audio: np.ndarray, options: DecoderOptions | None = None, **kw: Any) -> Decoded:
        c = self.choices()
        return self.host.decode_utterance(audio, options, model=c.model, device=c.device, **kw)

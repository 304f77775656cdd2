"""The engine dictation decodes with: its own, so a file job on the worker's engine and a
dictation session never share a model across threads; rebuilt when model or device change.
Its timing batches are forwarded (as a Qt signal) to the performance panel."""

from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from ..profiling import Recorder


class DictationEngines(QObject):
    timings = Signal(object)  # list[TimingEvent], emitted from the dictation thread

    def __init__(self, choices: Callable[[], Any], factory: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self._choices = choices
        self._factory = factory
        self._key: tuple[str, str] | None = None
        self._engine: Any = None
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        """Called on the dictation worker thread at every start."""
        c = self._choices()
        key = (c.model, c.device)
        with self._lock:
            if self._engine is None or key != self._key:
                if self._engine is not None:
                    self._engine.close()
                if self._factory is None:
                    from ..pipeline import Engine

                    self._factory = Engine
                recorder = Recorder(keep=False)  # a long session must not pile up events
                recorder.add_listener(lambda batch: self.timings.emit(batch))
                self._engine = self._factory(c.model, c.device, recorder=recorder)
                self._key = key
            return self._engine

"""The dictation tab's worker: the Qt-free dictation service on its own thread, its
callbacks turned into Qt signals, and the utterance decoder bound to the app's engine.

:class:`DictationWorker` lives on a QThread of the tab (:mod:`.dictation`), so the start
sound and opening the microphone never hold up the window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from ..desktop.service import IDLE, LISTENING, DictationService
from ..desktop.settings import DictateSettings
from ..live.decoder import WhisperUtteranceDecoder
from ..live.dictation import Final, Level, Partial

EngineProvider = Callable[[], Any]


class EngineDecoder(WhisperUtteranceDecoder):
    """The tab's utterance decoder: the engine the provider names at each decode (without
    a provider, ``base`` on ``auto``, loaded at the first decode), under ``options``
    (the service sets the language and the final decode at each start)."""

    def __init__(self, provider: EngineProvider | None) -> None:
        super().__init__(None)
        self._provider = provider

    def decode(self, audio, prompt=None, should_stop=None, partial=False):  # the session's decoder thread
        if self._provider is not None:
            self.engine = self._provider()
        elif self.engine is None:
            from ..pipeline import Engine

            self.engine = Engine("base", "auto")
        return super().decode(audio, prompt, should_stop, partial)


class DictationWorker(QObject):
    """Lives on its own QThread: the tab's start and stop run there (the start sound and
    opening the microphone never hold up the window). Holds the
    :class:`DictationService`; its callbacks (from its threads, the hotkey's and the
    control socket's included) leave as signals."""

    partial = Signal(int, str, str)  # utterance, stable text, unstable tail
    final = Signal(int, float, float, str)  # utterance, start s, end s, text ("" = dropped)
    level = Signal(float)  # dBFS
    notice = Signal(str, bool)  # message, is_error
    started = Signal(str)  # WAV path
    stopped = Signal(str, str)  # WAV path, transcript path
    state = Signal(str)  # the service's: idle, listening, decoding
    delivered = Signal(str, bool, str)  # text as inserted, into an application (else only kept), how

    def __init__(self, engine_provider: EngineProvider | None, source_factory: Callable[[Any], Any] | None,
                 settings: DictateSettings, delivery=None) -> None:
        super().__init__()
        self._source_factory = source_factory
        self.device: Any = None  # the input device picked in the tab (set from the GUI thread)
        self.app_active = False  # this app's window has the focus: keep the text here
        self._decoder = EngineDecoder(engine_provider)
        self.service = DictationService(
            settings, self._decoder, self._make_source, delivery=delivery, on_state=self._on_state,
            on_notice=self.notice.emit, on_delivered=self._on_delivered, on_event=self._on_event,
            should_deliver=lambda: not self.app_active, persist_settings=True,
        )

    @Slot(str)
    def command(self, name: str) -> None:  # the worker thread
        if name == "start":
            self.service.start()
            if self.service.state == IDLE:  # it could not start (the notice says why)
                self.stopped.emit("", "")
        elif name == "stop":
            self.service.stop(wait=False)

    def _make_source(self):
        if self._source_factory is not None:
            return self._source_factory(self.device)
        from ..live.sources import MicSource

        return MicSource(self.device)

    def _on_state(self, state: str) -> None:  # the service's threads
        svc = self.service
        if state == LISTENING:
            self.started.emit(str(svc.session.wav_path) if svc.session is not None else "")
        elif state == IDLE:
            r = svc.last_result
            self.stopped.emit(str(r.wav_path) if r is not None else "", str(r.transcript_path or "") if r is not None else "")
        self.state.emit(state)

    def _on_delivered(self, d) -> None:  # the delivery thread
        self.delivered.emit(d.text, d.result.delivered, d.result.how)

    def _on_event(self, ev: object) -> None:  # the session's threads
        if isinstance(ev, Final):
            self.final.emit(ev.index, ev.start_s, ev.end_s, ev.text)
        elif isinstance(ev, Partial):
            self.partial.emit(ev.index, ev.stable, ev.tail)
        elif isinstance(ev, Level):
            self.level.emit(ev.dbfs)
        # notices reach the tab through the service's on_notice

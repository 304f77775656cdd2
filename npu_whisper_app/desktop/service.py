"""The dictation service behind ``npu-whisper dictate``: start/stop/toggle a
:class:`~npu_whisper_app.live.dictation.DictationSession` from the hotkey, the control
socket or the tray, and deliver its final utterances into the focused application.

Qt-free: the tray (``gui/tray.py``) only watches :attr:`state` through ``on_state`` and
calls :meth:`toggle`. One decoder (one engine) serves every session; it is made once,
when the service starts, so the first dictation does not wait for the model.

States: ``idle`` -> ``listening`` -> ``decoding`` (stopping: the last utterance is being
decoded and delivered) -> ``idle``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..live.dictation import DictationOptions, DictationSession, Final, Notice, Partial
from ..live.levelhint import QuietMicMonitor
from ..live.segmenter import SegmenterOptions
from ..live.textproc import SpokenCommands, UtteranceJoiner
from . import sounds
from .delivery import DeliveryOptions, TextDelivery
from .settings import DictateSettings
from .sink import Delivered, DeliverySink
from .vocabulary import VocabularyDecoder

IDLE, LISTENING, DECODING = "idle", "listening", "decoding"


class DictationService:
    def __init__(
        self,
        settings: DictateSettings,
        decoder,
        make_source: Callable[[], object],
        delivery: TextDelivery | None = None,
        on_state: Callable[[str], None] | None = None,
        on_notice: Callable[[str, bool], None] | None = None,
        on_delivered: Callable[[Delivered], None] | None = None,
        wav_dir=None,
        session_options: dict | None = None,
        persist_settings: bool = False,
    ) -> None:
        self.settings = settings
        self.decoder = VocabularyDecoder(decoder, settings.vocabulary) if settings.vocabulary else decoder
        self.make_source = make_source
        self.on_state = on_state
        self.on_notice = on_notice
        self.wav_dir = wav_dir
        self.session_options = session_options or {}  # more DictationOptions fields (tests: vad="energy")
        self.persist_settings = persist_settings
        self.delivery = delivery or TextDelivery.for_desktop(
            DeliveryOptions(method=settings.method, restore_clipboard=settings.restore_clipboard),
            on_notice=lambda m: self._notice(m, False),
            restore_token=settings.remote_desktop_token or None,
            on_token=self._keep_token,
        )
        self.sink = DeliverySink(self.delivery, UtteranceJoiner(SpokenCommands() if settings.spoken_commands else None), on_delivered)
        self.monitor = QuietMicMonitor()
        self.state = IDLE
        self.session: DictationSession | None = None
        self.last_result = None
        self._lock = threading.RLock()
        self._last_activity = 0.0
        self._watch: threading.Thread | None = None
        self._closed = False
        self._sound_told = False

    def _keep_token(self, token: str) -> None:
        """The RemoteDesktop portal's restore token: saved, so the desktop asks once."""
        self.settings.remote_desktop_token = token
        if self.persist_settings:
            from .settings import load_settings, save_settings

            saved = load_settings()
            saved.remote_desktop_token = token
            save_settings(saved)

    # -- commands ------------------------------------------------------------------------
    def handle(self, command: str) -> dict:
        """The control socket's handler."""
        if command == "toggle":
            self.toggle()
        elif command == "start":
            self.start()
        elif command == "stop":
            self.stop(wait=False)
        elif command == "quit":
            threading.Thread(target=self.close, daemon=True).start()
            return {"ok": True, "state": "quitting"}
        return {"ok": True, "state": self.state, **({"recording": str(self.session.wav_path)} if self.session else {})}

    def toggle(self) -> None:
        with self._lock:
            if self.state == IDLE:
                self.start()
            elif self.state == LISTENING:
                self.stop(wait=False)

    def start(self) -> None:
        with self._lock:
            if self.state != IDLE or self._closed:
                return
            if self.settings.sounds:
                problem = sounds.play(sounds.START)  # ends before the microphone opens
                if problem and not self._sound_told:
                    self._sound_told = True
                    self._notice(problem, False)
            opts = DictationOptions(
                partials=self.settings.partials,
                final=self.settings.final,
                prompt_previous=self.settings.final == "window",  # as the app's tab does
                segmenter=SegmenterOptions(min_silence_ms=self.settings.silence_ms),
                wav_path=_new_wav(self.wav_dir) if self.wav_dir else None,
                **self.session_options,
            )
            try:
                source = self.make_source()
                # the joiner is not reset: the cursor is usually still after the last text
                session = DictationSession(self.decoder, source, opts, on_event=self._on_event)
                session.start()
            except Exception as exc:
                self._notice(f"cannot start dictation: {exc}", True)
                return
            self.session = session
            self._last_activity = time.monotonic()
            self._set_state(LISTENING)
            self._watch = threading.Thread(target=self._watch_session, args=(session,), name="dictate-watch", daemon=True)
            self._watch.start()

    def stop(self, wait: bool = True) -> None:
        """Stop listening; the last utterance is still decoded and delivered."""
        with self._lock:
            session = self.session
            if session is None or self.state != LISTENING:
                return
            self._set_state(DECODING)
        t = threading.Thread(target=self._finish, args=(session,), name="dictate-stop", daemon=True)
        t.start()
        if wait:
            t.join()

    def _finish(self, session: DictationSession) -> None:
        result = session.stop()
        self.sink.wait_idle(30)
        self.delivery.flush()
        with self._lock:
            self.last_result = result
            if self.session is session:
                self.session = None
                self._set_state(IDLE)
        if self.settings.sounds:
            sounds.play(sounds.STOP)  # the microphone is closed: never transcribed

    def _watch_session(self, session: DictationSession) -> None:
        """Ends a session whose source ended or failed; auto-stop after silence."""
        while True:
            if session.wait(0.1):
                break
            if self.session is not session or self.state != LISTENING:
                return
            limit = self.settings.auto_stop_s
            if limit and limit > 0:
                if session.segmenter.open is not None:
                    self._last_activity = time.monotonic()
                elif time.monotonic() - self._last_activity >= limit:
                    self._notice(f"stopped after {limit:g} s without speech", False)
                    break
        self.stop(wait=False)

    def close(self) -> None:
        self._closed = True
        self.stop(wait=True)
        self.sink.close()

    # -- events --------------------------------------------------------------------------
    def _on_event(self, ev: object) -> None:
        self.sink.on_event(ev)
        hint = self.monitor.on_event(ev)
        if hint is not None:
            self._notice(hint.message, False)
        if isinstance(ev, (Final, Partial)):
            self._last_activity = time.monotonic()
        elif isinstance(ev, Notice):
            self._notice(ev.message, ev.error)

    def _notice(self, message: str, error: bool) -> None:
        if self.on_notice is not None:
            try:
                self.on_notice(message, error)
            except Exception:
                pass

    def _set_state(self, state: str) -> None:
        self.state = state
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                pass


def _new_wav(folder):
    from ..live.dictation import new_wav_path

    return new_wav_path(folder)

"""The dictation service: start/stop/toggle a
:class:`~npu_whisper_app.live.dictation.DictationSession` from the hotkey, the control
socket, the tray or a window, and deliver its final utterances into the focused application.

Two programs run it: ``npu-whisper dictate`` (``cli_dictate.serve``, with its own engine and
the tray) and the desktop app (``gui/dictation.py``: the Dictation tab, decoding on the
app's one engine). Both reach it the same ways (:func:`start_hotkey`, the control socket).

Qt-free: the tray (``gui/tray.py``) and the tab only watch :attr:`state` through
``on_state`` (the tab also every session event through ``on_event``) and call
:meth:`toggle`. One decoder (one engine) serves every session; it is made once, when the
service starts, so the first dictation does not wait for the model. The settings
(:class:`~npu_whisper_app.desktop.settings.DictateSettings`) are read at every start, so a
change (:meth:`apply_settings` for delivery) applies to the next dictation.

States: ``idle`` -> ``listening`` -> ``decoding`` (stopping: the last utterance is being
decoded and delivered) -> ``idle``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

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
METHODS = ("paste", "type", "clipboard")  # and "off": the app's tab only shows the text


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
        on_event: Callable[[object], None] | None = None,
        should_deliver: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.base_decoder = decoder  # its options take the settings' language and final at each start
        self.decoder = self._decoder()
        self.make_source = make_source
        self.on_state = on_state
        self.on_notice = on_notice
        self.on_event = on_event  # every session event, after delivery has seen it (the app's tab)
        # asked at each final: False keeps it out of other applications (the app's own window has the focus)
        self.should_deliver = should_deliver
        self.wav_dir = wav_dir
        self.session_options = session_options or {}  # DictationOptions fields over the settings' (tests: vad="energy")
        self.persist_settings = persist_settings
        self.delivery = delivery or TextDelivery.for_desktop(
            DeliveryOptions(method=_method(settings), restore_clipboard=settings.restore_clipboard),
            on_notice=lambda m: self._notice(m, False),
            restore_token=settings.remote_desktop_token or None,
            on_token=self._keep_token,
        )
        if getattr(self.delivery, "on_notice", False) is None:  # a delivery made elsewhere tells the user here too
            self.delivery.on_notice = lambda m: self._notice(m, False)
        self.sink = DeliverySink(self.delivery, UtteranceJoiner(SpokenCommands() if settings.spoken_commands else None), on_delivered)
        self.monitor = QuietMicMonitor()
        self.state = IDLE
        self.session: DictationSession | None = None
        self.last_result = None
        self._lock = threading.RLock()
        self._last_activity = 0.0
        self._watch: threading.Thread | None = None
        self._stopper: threading.Thread | None = None
        self._closed = False
        self._sound_told = False

    def _decoder(self):
        """The decoder for the next session: the settings' language, final and vocabulary."""
        base = self.base_decoder
        opts = getattr(base, "options", None)
        if opts is not None and hasattr(opts, "language"):
            base.options = replace(opts, language=self.settings.language, final=self.settings.final)
        words = self.settings.vocabulary
        return VocabularyDecoder(base, words) if words else base

    def apply_settings(self) -> None:
        """Take changed delivery settings (method, clipboard restore, spoken commands) now;
        language, vocabulary, final, sounds and auto-stop are read at each start."""
        s = self.settings
        options = getattr(self.delivery, "options", None)  # a stand-in delivery may have none
        if options is not None:
            options.method = _method(s)
            options.restore_clipboard = s.restore_clipboard
        commands = self.sink.joiner.commands
        if s.spoken_commands and commands is None:
            self.sink.joiner.commands = SpokenCommands()
        elif not s.spoken_commands:
            self.sink.joiner.commands = None

    def _keep_token(self, token: str) -> None:
        """The RemoteDesktop portal's restore token: saved, so the desktop asks once."""
        self.settings.remote_desktop_token = token
        if self.persist_settings:
            from .settings import update_settings

            update_settings(remote_desktop_token=token)

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
            fields = dict(
                partials=self.settings.partials,
                final=self.settings.final,
                prompt_previous=self.settings.final == "window",  # as the app's tab does
                segmenter=SegmenterOptions(min_silence_ms=self.settings.silence_ms),
                wav_path=_new_wav(self.wav_dir) if self.wav_dir else None,
            )
            fields.update(self.session_options)
            opts = DictationOptions(**fields)
            try:
                self.decoder = self._decoder()
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
        self._stopper = t
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
        """Stop (the last words still decoded and delivered) and wait until the session
        has ended, a stop already under way included: the microphone is closed after this."""
        self._closed = True
        self.stop(wait=True)
        stopper = self._stopper
        if stopper is not None:
            stopper.join()
        self.sink.close()

    # -- events --------------------------------------------------------------------------
    def _on_event(self, ev: object) -> None:
        if isinstance(ev, Final) and self._delivers():
            self.sink.on_event(ev)
        hint = self.monitor.on_event(ev)
        if hint is not None:
            self._notice(hint.message, False)
        if isinstance(ev, (Final, Partial)):
            self._last_activity = time.monotonic()
        elif isinstance(ev, Notice):
            self._notice(ev.message, ev.error)
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:
                pass

    def _delivers(self) -> bool:
        if self.settings.method == "off":  # only in the app's window
            return False
        try:
            return self.should_deliver is None or bool(self.should_deliver())
        except Exception:
            return True

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


def _method(settings: DictateSettings) -> str:
    """The delivery method (``off``, only in the app's window, delivers nothing: paste is kept ready)."""
    return settings.method if settings.method in METHODS else "paste"


def start_hotkey(settings: DictateSettings, service: DictationService, on_notice: Callable[[str, bool], None]):
    """The global hotkey for ``service`` in this desktop session: the X11 grab, or on
    Wayland the GlobalShortcuts portal (bound on a thread of its own: the desktop may ask
    the user first). Returns ``(hotkey or None, a hint for the user)``; close the hotkey
    when done. A hotkey that cannot be had is a notice, never an error: the control
    socket (``npu-whisper dictate --toggle``) still works."""
    from . import environment

    hint = "npu-whisper dictate --toggle"
    if settings.mode == "toggle":
        on_press, on_release = service.toggle, None
    else:
        on_press, on_release = service.start, lambda: service.stop(wait=False)
    kind = environment.session_type()
    if kind == "x11":
        from .hotkey import HotkeyError, X11Hotkey

        try:
            hotkey = X11Hotkey(settings.hotkey, on_press, on_release)
            hotkey.start()
        except HotkeyError as exc:
            on_notice(str(exc), False)
            return None, hint
        return hotkey, f"{settings.hotkey} ({'toggle' if settings.mode == 'toggle' else 'hold to talk'}) or {hint}"
    if kind == "wayland":
        return _portal_hotkey(settings, on_press, on_release, on_notice), f"{settings.hotkey} (if the desktop confirmed it) or {hint}"
    return None, hint


def _portal_hotkey(settings: DictateSettings, on_press, on_release, on_notice):
    from .hotkey import HotkeyError
    from .portal_hotkey import PortalHotkey, PortalUnavailable

    try:
        hk = PortalHotkey(settings.hotkey, on_press, on_release)
    except HotkeyError as exc:
        on_notice(f"no global hotkey: {exc}; bind a key to `npu-whisper dictate --toggle` in your desktop's keyboard shortcut settings", False)
        return None

    def bind() -> None:
        try:
            hk.start()
            on_notice(f"global hotkey {settings.hotkey} registered with the desktop (GlobalShortcuts portal)", False)
        except PortalUnavailable as exc:
            on_notice(f"{exc}: bind a key to `npu-whisper dictate --toggle` in your desktop's keyboard shortcut settings", False)
        except HotkeyError as exc:
            on_notice(f"the global hotkey was not registered ({exc}); `npu-whisper dictate --toggle` still works", False)

    threading.Thread(target=bind, name="dictate-portal-bind", daemon=True).start()
    return hk


def _new_wav(folder):
    from ..live.dictation import new_wav_path

    return new_wav_path(folder)

"""Dictation mode: a self-contained widget (the main window embeds it as a tab).

``DictationWidget(engine_provider=None, parent=None)``: ``engine_provider`` is called on
the session's decoder thread for each decode; it returns what decodes utterances (an
:class:`~npu_whisper_app.pipeline.Engine`, or the app's ``EngineChoice`` on its one
``EngineHost``; anything with ``decode_utterance``), so a model or device switched in the
window applies to the next utterance. Without one the widget loads ``base`` on ``auto``.

The dictation itself is the Qt-free :class:`~npu_whisper_app.desktop.service.DictationService`,
the same one ``npu-whisper dictate`` runs, with the same settings (``dictate.json``: vocabulary,
spoken commands, delivery method, language, auto-stop, sounds; the widgets here read and
write them): final utterances are delivered into the focused application by the service's
desktop code unless the method is "only in this window" (or this window has the focus:
then the text is only shown here). :meth:`DictationWidget.serve_desktop` (the main window
calls it) makes the tab answer the global hotkey and ``npu-whisper dictate
--toggle|--start|--stop|--status`` while the window runs.

The widget only shows what the service and its session report: their callbacks come from
their threads and are forwarded as Qt signals; final text is shown plain, the stable part
of the open utterance grey and italic. Delivery never decides what is shown: every final
is in the text area whatever became of it elsewhere.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from ..desktop.service import LISTENING
from ..desktop.settings import DictateSettings, load_settings, update_settings
from ..live.dictation import DictationOptions
from .dictation_worker import DictationWorker, EngineDecoder, EngineProvider
from .elided_label import ElidedLabel
from .options_bar import language_items

__all__ = ["DictationWidget", "DictationWorker", "EngineDecoder", "EngineProvider"]


METHODS = (
    ("Into the focused app (paste)", "paste"),
    ("Into the focused app (type keys)", "type"),
    ("Onto the clipboard", "clipboard"),
    ("Only in this window", "off"),
)
#: the dictate.json fields this tab shows and saves (the rest are the service's alone)
TAB_SETTINGS = ("method", "language", "vocabulary", "spoken_commands", "sounds", "auto_stop_s")


class DictationWidget(QWidget):
    """Large text area with final and partial text, copy-all, auto-copy, level meter,
    start/stop, an input-device picker, and the dictation settings shared with
    ``npu-whisper dictate`` (where the text goes, language, vocabulary, spoken commands,
    sounds, auto-stop), saved to ``dictate.json`` as they change."""

    _command = Signal(str)
    finalText = Signal(str)  # each final utterance, for whoever embeds the widget

    def __init__(
        self,
        engine_provider: EngineProvider | None = None,
        parent: QWidget | None = None,
        *,
        options: DictationOptions | None = None,
        wav_dir: str | Path | None = None,
        source_factory: Callable[[Any], Any] | None = None,
        settings: DictateSettings | None = None,
        delivery=None,
    ) -> None:
        super().__init__(parent)
        self.wav_dir = Path(wav_dir) if wav_dir else None
        self.finals: list[str] = []
        self.partial_stable = ""
        self.partial_tail = ""
        self.running = False
        self.wav_path: str | None = None
        self.transcript_path: str | None = None
        self.errors: list[str] = []
        self.notices: list[str] = []
        self.serving = False  # this tab answers the hotkey and the control socket
        self.serving_message = ""
        self._server = None
        self._hotkey = None
        self._shut = False
        self._level = -120.0
        problems: list[str] = []
        self.settings = settings if settings is not None else load_settings(on_problem=problems.append)

        self.device_combo = QComboBox()
        self.device_combo.setMinimumWidth(220)
        self.refresh_button = QPushButton("↻")
        self.refresh_button.setToolTip("Refresh the list of input devices")
        self.refresh_button.setFixedWidth(36)
        self.start_button = QPushButton("Start dictation")
        self.copy_button = QPushButton("Copy all")
        self.clear_button = QPushButton("Clear")
        self.auto_copy = QCheckBox("Auto-copy each utterance")
        self.exact_words = QCheckBox("Exact words")
        self.exact_words.setChecked(True)
        self.exact_words.setToolTip(
            "On: decode each finished utterance exactly as a file is transcribed (the words a "
            "file would get). Off: a faster final on a window fitted to the utterance, with "
            "the previous text as prompt, whose words can differ from the file's"
        )
        # the settings shared with `npu-whisper dictate` (dictate.json)
        self.method_combo = QComboBox()
        self.method_combo.setObjectName("dictate_method")
        for text, method in METHODS:
            self.method_combo.addItem(text, method)
        self.method_combo.setToolTip(
            "Where each finished utterance goes besides this window: pasted (or typed) where the cursor is "
            "in the application that has the focus, put on the clipboard, or nowhere else"
        )
        self.language_combo = QComboBox()
        self.language_combo.setObjectName("dictate_language")
        for text, code in language_items():
            self.language_combo.addItem(text, code)
        self.language_combo.setToolTip("Spoken language for dictation (detect: the model decides; English-only models ignore it)")
        self.auto_stop = QSpinBox()
        self.auto_stop.setObjectName("dictate_auto_stop")
        self.auto_stop.setRange(0, 3600)
        self.auto_stop.setSuffix(" s")
        self.auto_stop.setSpecialValueText("never")
        self.auto_stop.setToolTip("Stop dictating after this long without speech")
        self.vocabulary = QLineEdit()
        self.vocabulary.setObjectName("dictate_vocabulary")
        self.vocabulary.setPlaceholderText("Names and jargon, comma-separated (given to Whisper as its prompt)")
        self.spoken_commands = QCheckBox("Spoken commands")
        self.spoken_commands.setToolTip("'new line', 'new paragraph', 'period', 'comma', 'question mark'... said become the text they name")
        self.sounds = QCheckBox("Sounds")
        self.sounds.setToolTip("A short sound when dictation starts and stops (never transcribed)")
        self.reach = ElidedLabel("")  # how dictation is driven from other applications
        self.reach.setObjectName("dictate_reach")

        self.meter = QProgressBar()
        self.meter.setRange(0, 60)
        self.meter.setTextVisible(False)
        self.meter.setMaximumHeight(10)
        self.text = QTextEdit()
        self.text.setReadOnly(True)
        font = self.text.font()
        font.setPointSize(max(font.pointSize() + 4, 14))
        self.text.setFont(font)
        self.status = ElidedLabel("Ready")  # long messages elide (full text in the tooltip), never widen the window

        top = QHBoxLayout()
        top.addWidget(QLabel("Input:"))
        top.addWidget(self.device_combo, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.start_button)
        where = QHBoxLayout()
        for label, widget in (("Text:", self.method_combo), ("Language:", self.language_combo), ("Auto-stop:", self.auto_stop)):
            where.addWidget(QLabel(label))
            where.addWidget(widget)
            where.addSpacing(6)
        where.addWidget(self.spoken_commands)
        where.addWidget(self.sounds)
        where.addStretch(1)
        words = QHBoxLayout()
        words.addWidget(QLabel("Vocabulary:"))
        words.addWidget(self.vocabulary, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.copy_button)
        bottom.addWidget(self.clear_button)
        bottom.addWidget(self.auto_copy)
        bottom.addWidget(self.exact_words)
        bottom.addStretch(1)
        bottom.addWidget(self.status)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(where)
        lay.addLayout(words)
        lay.addWidget(self.reach)
        lay.addWidget(self.meter)
        lay.addWidget(self.text, 1)
        lay.addLayout(bottom)

        self._thread = QThread(self)
        self._thread.setObjectName("dictation-worker")
        self.worker = DictationWorker(engine_provider, source_factory, self.settings, delivery)
        self.worker.service.wav_dir = self.wav_dir
        self.worker.moveToThread(self._thread)
        self._command.connect(self.worker.command)
        self.worker.partial.connect(self._on_partial)
        self.worker.final.connect(self._on_final)
        self.worker.level.connect(self._on_level)
        self.worker.notice.connect(self._on_notice)
        self.worker.started.connect(self._on_started)
        self.worker.stopped.connect(self._on_stopped)
        self.worker.state.connect(self._on_state)
        self.worker.delivered.connect(self._on_delivered)
        self._thread.start()

        self._show_settings()
        self.options = options or DictationOptions()  # also the service's session options (property)
        self.start_button.clicked.connect(self.toggle)
        self.copy_button.clicked.connect(self.copy_all)
        self.clear_button.clicked.connect(self.clear)
        self.refresh_button.clicked.connect(self.refresh_devices)
        self.exact_words.toggled.connect(self._sync_service)
        self.device_combo.currentIndexChanged.connect(self._sync_service)
        for combo in (self.method_combo, self.language_combo):
            combo.currentIndexChanged.connect(self._settings_changed)
        for box in (self.spoken_commands, self.sounds):
            box.toggled.connect(self._settings_changed)
        self.auto_stop.valueChanged.connect(self._settings_changed)
        self.vocabulary.editingFinished.connect(self._settings_changed)
        app = QGuiApplication.instance()
        if app is not None:
            app.applicationStateChanged.connect(self._on_app_state)
            self._on_app_state(QGuiApplication.applicationState())
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self._redraw_meter)
        self._timer.start()
        self.refresh_devices()
        for problem in problems:
            self._on_notice(problem, False)

    # -- settings ------------------------------------------------------------------------
    @property
    def options(self) -> DictationOptions:
        """The session options the tab starts from (the settings add the final decode,
        the pause that ends an utterance, the recording folder)."""
        return self._options

    @options.setter
    def options(self, value: DictationOptions) -> None:
        self._options = value
        self._sync_service()

    def _show_settings(self) -> None:
        """The settings in the widgets, without saving them again."""
        s = self.settings
        widgets = (self.method_combo, self.language_combo, self.auto_stop, self.vocabulary, self.spoken_commands, self.sounds)
        for w in widgets:
            w.blockSignals(True)
        try:
            self.method_combo.setCurrentIndex(max(self.method_combo.findData(s.method), 0))
            self.language_combo.setCurrentIndex(max(self.language_combo.findData(s.language), 0) if s.language else 0)
            self.auto_stop.setValue(int(round(s.auto_stop_s or 0)))
            self.vocabulary.setText(", ".join(s.vocabulary))
            self.spoken_commands.setChecked(bool(s.spoken_commands))
            self.sounds.setChecked(bool(s.sounds))
        finally:
            for w in widgets:
                w.blockSignals(False)

    def tab_settings(self) -> dict:
        """What the widgets say, as dictate.json fields."""
        return {
            "method": self.method_combo.currentData() or "paste",
            "language": self.language_combo.currentData(),
            "vocabulary": [w.strip() for w in self.vocabulary.text().split(",") if w.strip()],
            "spoken_commands": self.spoken_commands.isChecked(),
            "sounds": self.sounds.isChecked(),
            "auto_stop_s": float(self.auto_stop.value()),
        }

    def _settings_changed(self, *_args) -> None:
        changes = {k: v for k, v in self.tab_settings().items() if getattr(self.settings, k) != v}
        if not changes:
            return
        for k, v in changes.items():
            setattr(self.settings, k, v)
        self.worker.service.apply_settings()
        problems: list[str] = []
        try:  # only what changed here: the service may have saved other fields meanwhile
            update_settings(on_problem=problems.append, **changes)
        except OSError as exc:
            problems.append(f"could not save the dictation settings: {exc}")
        for problem in problems:
            self._on_notice(problem, False)
        self._show_reach()

    def _sync_service(self, *_args) -> None:
        """Give the service what the tab decides for the next start (hotkey and socket
        starts included): the input device, the final decode, the session options."""
        svc = self.worker.service
        self.worker.device = self.device_combo.currentData()
        # Exact words: the file's words; off: the fitted window with the previous text as prompt
        svc.settings.final = "transcribe" if self.exact_words.isChecked() else "window"
        opts = self._options
        session = {f.name: getattr(opts, f.name) for f in fields(opts) if f.name not in ("final", "prompt_previous", "wav_path", "segmenter")}
        session["segmenter"] = replace(opts.segmenter, min_silence_ms=self.settings.silence_ms)
        if opts.wav_path and not self.wav_dir:
            session["wav_path"] = opts.wav_path
        svc.session_options = session

    @Slot(object)
    def _on_app_state(self, state) -> None:
        self.worker.app_active = state == Qt.ApplicationState.ApplicationActive

    # -- other applications --------------------------------------------------------------
    def serve_desktop(self) -> bool:
        """Answer the global hotkey and ``npu-whisper dictate --toggle|--start|--stop|--status``
        with this tab's dictation, until :meth:`shutdown`. False (and the tab says why) when
        another program already serves them: a standalone ``npu-whisper dictate`` is left as it is."""
        from ..desktop.control import ControlError, ControlServer, SocketTaken
        from ..desktop.service import start_hotkey

        server = ControlServer(self._handle_command, owner="app")
        try:
            server.start()
        except SocketTaken as exc:
            if exc.owner == "service":
                msg = ("The dictation service (npu-whisper dictate) is already running: it answers the hotkey and "
                       "`npu-whisper dictate --toggle` with its own model, not this window. This tab dictates when you press "
                       "Start. To dictate through the app instead, quit the service (npu-whisper dictate --quit) and restart the app.")
            else:
                msg = "Another npu-whisper app serves the hotkey and `npu-whisper dictate --toggle`; this tab dictates when you press Start."
            return self._not_serving(msg)
        except (ControlError, OSError) as exc:
            return self._not_serving(f"No control socket for `npu-whisper dictate --toggle` ({exc}); this tab dictates when you press Start.")
        self._server = server
        self._hotkey, hint = start_hotkey(self.settings, self.worker.service, self.worker.notice.emit)
        self.serving, self._hint = True, hint
        self._show_reach()
        return True

    def _not_serving(self, message: str) -> bool:
        self.serving, self.serving_message = False, message
        self.reach.setText(message)
        self._on_notice(message, False)
        return False

    def _show_reach(self) -> None:
        if not self.serving:
            return
        where = "only in this window" if self.settings.method == "off" else "where the cursor is in the focused application"
        self.serving_message = f"From anywhere: {self._hint}. Text goes {where}."
        self.reach.setText(self.serving_message)

    def _handle_command(self, command: str) -> dict:  # the control socket's thread
        svc = self.worker.service
        if command == "quit":
            svc.stop(wait=False)
            return {"ok": False, "state": svc.state,
                    "error": "dictation is served by the npu-whisper app (its Dictation tab); it stopped listening. Close the app to end it."}
        return svc.handle(command)

    # -- devices -------------------------------------------------------------------------
    def refresh_devices(self) -> None:
        self.device_combo.clear()
        self.device_combo.addItem("System default", None)
        try:
            from ..audio.capture import list_input_devices

            devices = list_input_devices()
        except Exception as exc:
            self.status.setText(f"No audio input: {exc}")
            return
        for d in devices:
            self.device_combo.addItem(d.label(), d.index)

    # -- start / stop --------------------------------------------------------------------
    def toggle(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()

    def start(self) -> None:
        if self.running:
            return
        self._sync_service()
        self.running = True
        self.errors.clear()
        self.start_button.setText("Stop")
        self.device_combo.setEnabled(False)
        self._command.emit("start")

    def stop(self) -> None:
        if self.running:
            self.status.setText("Finishing the last utterance ...")
            self._command.emit("stop")

    # -- updates (GUI thread) ------------------------------------------------------------
    @Slot(str)
    def _on_state(self, state: str) -> None:
        if state == LISTENING and not self.running:  # started by the hotkey or the socket
            self.running = True
            self.errors.clear()
            self.start_button.setText("Stop")
            self.device_combo.setEnabled(False)
        elif state == "decoding":
            self.status.setText("Finishing the last utterance ...")

    @Slot(int, str, str)
    def _on_partial(self, index: int, stable: str, tail: str) -> None:
        self.partial_stable, self.partial_tail = stable, tail
        self._render()

    @Slot(int, float, float, str)
    def _on_final(self, index: int, start: float, end: float, text: str) -> None:
        self.partial_stable = self.partial_tail = ""
        if text:
            self.finals.append(text)
            if self.auto_copy.isChecked():
                QGuiApplication.clipboard().setText(text)
            self.finalText.emit(text)
        self._render()

    @Slot(str, bool, str)
    def _on_delivered(self, text: str, delivered: bool, how: str) -> None:
        if delivered:
            self.status.setText(f"Sent: {how}")

    @Slot(float)
    def _on_level(self, dbfs: float) -> None:
        self._level = dbfs

    @Slot(str, bool)
    def _on_notice(self, message: str, error: bool) -> None:
        self.notices.append(message)
        if error:
            self.errors.append(message)
            self.status.setText(f"⚠ {message}")
        else:
            self.status.setText(message[:1].upper() + message[1:])

    @Slot(str)
    def _on_started(self, wav: str) -> None:
        self.wav_path = wav
        where = "" if self.settings.method == "off" else "; the words go where the cursor is once another application has the focus"
        self.status.setText(f"Listening{where}")

    @Slot(str, str)
    def _on_stopped(self, wav: str, transcript: str) -> None:
        self.running = False
        self.partial_stable = self.partial_tail = ""
        self._level = -120.0
        self.start_button.setText("Start dictation")
        self.device_combo.setEnabled(True)
        if wav:
            self.wav_path, self.transcript_path = wav, transcript or None
            msg = f"Stopped. Recording saved: {wav}"
            self.status.setText(("⚠ " + self.errors[-1] + " — " if self.errors else "") + msg)
        self._render()

    def _redraw_meter(self) -> None:
        self.meter.setValue(int(max(0.0, min(60.0, self._level + 60.0))))

    def _render(self) -> None:
        parts = [html.escape(t) for t in self.finals]
        body = " ".join(parts)
        if self.partial_stable:
            body += (" " if body else "") + f'<span style="color:#808080; font-style:italic">{html.escape(self.partial_stable)} …</span>'
        self.text.setHtml(f"<div>{body}</div>")
        self.text.moveCursor(QTextCursor.MoveOperation.End)

    # -- text ----------------------------------------------------------------------------
    def all_text(self) -> str:
        return " ".join(self.finals)

    def copy_all(self) -> None:
        QGuiApplication.clipboard().setText(self.all_text())
        self.status.setText("Copied all text")

    def clear(self) -> None:
        self.finals.clear()
        self.partial_stable = self.partial_tail = ""
        self._render()

    def shutdown(self, timeout_ms: int = 60000) -> None:
        """Stop dictation (keeping what was said, delivering the last words), give the
        hotkey and the control socket back, end the worker thread."""
        if self._shut:
            return
        self._shut = True
        if self._hotkey is not None:
            self._hotkey.close()
            self._hotkey = None
        if self._server is not None:
            self._server.close()
            self._server = None
        self.serving = False
        self.worker.service.close()
        self._thread.quit()
        self._thread.wait(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt)
        self.shutdown()
        super().closeEvent(event)

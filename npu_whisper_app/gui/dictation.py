"""Dictation mode: a self-contained widget (the main window embeds it as a tab).

``DictationWidget(engine_provider=None, parent=None)``: ``engine_provider`` is called
on the widget's worker thread each time dictation starts; it returns a
:class:`~npu_whisper_app.pipeline.Engine` (or any object with the decoder's
``decode(audio, prompt=None, should_stop=None)``). Without one the widget loads
``base`` on the ``auto`` device itself.

The widget only shows what the Qt-free :class:`~npu_whisper_app.live.dictation.DictationSession`
reports: a worker ``QThread`` runs the session and forwards its events as Qt signals;
final text is shown plain, the stable part of the open utterance grey and italic.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from ..live.dictation import DictationOptions, DictationSession, Final, Level, Notice, Partial
from .elided_label import ElidedLabel

EngineProvider = Callable[[], Any]


class DictationWorker(QObject):
    """Lives on its own QThread; runs one session at a time."""

    partial = Signal(int, str, str)  # utterance, stable text, unstable tail
    final = Signal(int, float, float, str)  # utterance, start s, end s, text ("" = dropped)
    level = Signal(float)  # dBFS
    notice = Signal(str, bool)  # message, is_error
    started = Signal(str)  # WAV path
    stopped = Signal(str, str)  # WAV path, transcript path

    def __init__(self, engine_provider: EngineProvider | None, source_factory: Callable[[Any], Any] | None) -> None:
        super().__init__()
        self._provider = engine_provider
        self._source_factory = source_factory
        self._decoder = None
        self._engine = None
        self._stop = threading.Event()
        self.session: DictationSession | None = None

    def request_stop(self) -> None:  # called from the GUI thread
        self._stop.set()

    def _make_decoder(self):
        """Asks the provider at every start (the embedding window may have switched model
        or device since); wraps a new engine in a decoder, reuses it for the same one."""
        if self._provider is not None:
            engine = self._provider()
        elif self._engine is not None:
            engine = self._engine
        else:
            from ..pipeline import Engine

            engine = Engine("base", "auto")
        if engine is not self._engine or self._decoder is None:
            self._engine = engine
            if hasattr(engine, "decode"):
                self._decoder = engine
            else:
                from ..live.decoder import WhisperUtteranceDecoder

                self._decoder = WhisperUtteranceDecoder(engine)
        return self._decoder

    @Slot(object, object)
    def run(self, device: Any, options: DictationOptions) -> None:
        self._stop.clear()
        try:
            self.notice.emit("loading the model ...", False)
            decoder = self._make_decoder()
            if self._source_factory is not None:
                source = self._source_factory(device)
            else:
                from ..live.sources import MicSource

                source = MicSource(device)
            self.session = DictationSession(decoder, source, options, on_event=self._on_event)
            self.session.start()
        except Exception as exc:
            self.notice.emit(f"cannot start dictation: {type(exc).__name__}: {exc}", True)
            self.stopped.emit("", "")
            self.session = None
            return
        self.started.emit(str(self.session.wav_path))
        self.notice.emit("listening", False)
        while not self._stop.is_set() and not self.session.wait(0.05):
            pass
        result = self.session.stop()
        self.session = None
        self.stopped.emit(str(result.wav_path), str(result.transcript_path or ""))

    def _on_event(self, ev: object) -> None:  # the session's threads
        if isinstance(ev, Final):
            self.final.emit(ev.index, ev.start_s, ev.end_s, ev.text)
        elif isinstance(ev, Partial):
            self.partial.emit(ev.index, ev.stable, ev.tail)
        elif isinstance(ev, Level):
            self.level.emit(ev.dbfs)
        elif isinstance(ev, Notice):
            self.notice.emit(ev.message, ev.error)


class DictationWidget(QWidget):
    """Large text area with final and partial text, copy-all, auto-copy, level meter,
    start/stop and an input-device picker."""

    _run = Signal(object, object)
    finalText = Signal(str)  # each final utterance, for whoever embeds the widget

    def __init__(
        self,
        engine_provider: EngineProvider | None = None,
        parent: QWidget | None = None,
        *,
        options: DictationOptions | None = None,
        wav_dir: str | Path | None = None,
        source_factory: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(parent)
        self.options = options or DictationOptions()
        self.wav_dir = Path(wav_dir) if wav_dir else None
        self.finals: list[str] = []
        self.partial_stable = ""
        self.partial_tail = ""
        self.running = False
        self.wav_path: str | None = None
        self.transcript_path: str | None = None
        self.errors: list[str] = []
        self._level = -120.0

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
        bottom = QHBoxLayout()
        bottom.addWidget(self.copy_button)
        bottom.addWidget(self.clear_button)
        bottom.addWidget(self.auto_copy)
        bottom.addWidget(self.exact_words)
        bottom.addStretch(1)
        bottom.addWidget(self.status)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.meter)
        lay.addWidget(self.text, 1)
        lay.addLayout(bottom)

        self._thread = QThread(self)
        self._thread.setObjectName("dictation-worker")
        self.worker = DictationWorker(engine_provider, source_factory)
        self.worker.moveToThread(self._thread)
        self._run.connect(self.worker.run)
        self.worker.partial.connect(self._on_partial)
        self.worker.final.connect(self._on_final)
        self.worker.level.connect(self._on_level)
        self.worker.notice.connect(self._on_notice)
        self.worker.started.connect(self._on_started)
        self.worker.stopped.connect(self._on_stopped)
        self._thread.start()

        self.start_button.clicked.connect(self.toggle)
        self.copy_button.clicked.connect(self.copy_all)
        self.clear_button.clicked.connect(self.clear)
        self.refresh_button.clicked.connect(self.refresh_devices)
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self._redraw_meter)
        self._timer.start()
        self.refresh_devices()

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
        from dataclasses import replace

        from ..live.dictation import new_wav_path

        opts = replace(self.options, wav_path=new_wav_path(self.wav_dir) if self.wav_dir or not self.options.wav_path else self.options.wav_path)
        if self.exact_words.isChecked():
            opts = replace(opts, final="transcribe", prompt_previous=False)
        else:
            opts = replace(opts, final="window", prompt_previous=True)
        self.running = True
        self.errors.clear()
        self.start_button.setText("Stop")
        self.device_combo.setEnabled(False)
        self._run.emit(self.device_combo.currentData(), opts)

    def stop(self) -> None:
        if self.running:
            self.status.setText("Finishing the last utterance ...")
            self.worker.request_stop()

    # -- updates (GUI thread) ------------------------------------------------------------
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

    @Slot(float)
    def _on_level(self, dbfs: float) -> None:
        self._level = dbfs

    @Slot(str, bool)
    def _on_notice(self, message: str, error: bool) -> None:
        if error:
            self.errors.append(message)
            self.status.setText(f"⚠ {message}")
        else:
            self.status.setText(message[:1].upper() + message[1:])

    @Slot(str)
    def _on_started(self, wav: str) -> None:
        self.wav_path = wav
        self.status.setToolTip(f"Recording to {wav}")

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
        """Stop dictation (keeping what was said) and end the worker thread."""
        self.worker.request_stop()
        self._thread.quit()
        self._thread.wait(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt)
        self.shutdown()
        super().closeEvent(event)

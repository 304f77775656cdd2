"""The main window: menus, toolbar, the mode tabs (Transcribe first; Dictation can be
added with :meth:`MainWindow.add_mode`), status bar, and the wiring between widgets and
the worker. It computes nothing itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from .. import output
from ..pipeline import TranscribeOptions
from ..profiling import export_timings
from .dictation import DictationWidget
from .options_bar import OptionsBar
from .paths import log_file
from .perf_panel import PerfPanel
from .record_panel import RecordPanel
from .settings import Choices, Settings, add_recent
from .timings_dialog import ask_timings_path
from .transcript_view import TranscriptView, format_timestamp
from .worker import Job, WorkerHost

log = logging.getLogger(__name__)

AUDIO_FILTER = "Audio and video (*.wav *.flac *.mp3 *.m4a *.ogg *.opus *.aac *.wma *.webm *.mp4 *.mkv *.mov *.avi);;All files (*)"
EXPORT_FILTERS = {
    "srt": "SubRip subtitles (*.srt)",
    "vtt": "WebVTT subtitles (*.vtt)",
    "txt": "Plain text (*.txt)",
    "json": "JSON (*.json)",
    "tsv": "Tab-separated (*.tsv)",
}


def icon_path() -> Path:
    return Path(__file__).resolve().parent / "resources" / "npu-whisper.svg"


class MainWindow(QMainWindow):
    """Open/record audio, transcribe it on the worker, show the transcript and timings."""

    def __init__(
        self,
        settings: Settings | None = None,
        engine_factory: Callable[..., Any] | None = None,
        dialogs: bool = True,
        preload: bool = True,
        serve_dictation: bool = True,
    ) -> None:
        super().__init__()
        self.setWindowTitle("NPU Whisper")
        if icon_path().exists():
            self.setWindowIcon(QIcon(str(icon_path())))
        self.settings = settings or Settings()
        self.choices: Choices = self.settings.load()
        self.dialogs = dialogs
        self.errors: list[str] = []
        self.results: dict[int, Any] = {}
        self.last_result: Any = None
        self.jobs: dict[int, Job] = {}
        self.shown_job: int | None = None
        self.engine_info: dict | None = None
        self._message_boxes: list[QMessageBox] = []

        self.host = WorkerHost(engine_factory, parent=self)
        w = self.host.worker
        w.engine_loading.connect(self._on_engine_loading)
        w.engine_ready.connect(self._on_engine_ready)
        w.engine_failed.connect(self._on_engine_failed)
        w.job_started.connect(self._on_job_started)
        w.progress.connect(self._on_progress)
        w.segment.connect(self._on_segment)
        w.timings.connect(self._on_timings)
        w.job_finished.connect(self._on_job_finished)
        w.job_failed.connect(self._on_job_failed)
        w.notice.connect(self._on_notice)

        self._build_widgets()
        if serve_dictation:
            # while the window runs, the hotkey and `npu-whisper dictate --toggle` drive the
            # Dictation tab (unless `npu-whisper dictate` already serves them: the tab says so)
            self.dictation.serve_desktop()
        self._build_actions()
        self._build_menus_and_toolbars()
        self.setAcceptDrops(True)
        self.options.apply(self.choices)
        self.record.refresh_devices(self.choices.input_device or "")
        self.options.changed.connect(self._save_choices)
        self.options.engine_changed.connect(self._reload_engine)
        self._restore_geometry()
        self._update_actions()
        if preload:
            QTimer.singleShot(0, self._reload_engine)

    # -- construction ----------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.transcript = TranscriptView()
        self.perf = PerfPanel()
        self.record = RecordPanel()
        self.record.finished.connect(lambda path: self.transcribe(path, kind="recording"))
        self.record.error.connect(self.show_error)
        self.record.started.connect(lambda p: (self.status(f"Recording to {p}"), self._update_actions()))
        self.record.finished.connect(lambda _p: self._update_actions())
        self.options = OptionsBar()

        self.source_label = QLabel("")
        self.source_label.setObjectName("source_label")
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.source_label.setFixedHeight(self.source_label.fontMetrics().height() + 6)
        file_mode = QWidget()
        fv = QVBoxLayout(file_mode)
        fv.setContentsMargins(0, 0, 0, 0)
        fv.addWidget(self.record)
        fv.addWidget(self.source_label)
        fv.addWidget(self.transcript, 1)
        # Modes: the file/recording transcriber and live dictation, side by side with the
        # performance panel, which shows whichever mode is running the encoder.
        self.modes = QTabWidget()
        self.modes.setObjectName("modes")
        self.modes.setDocumentMode(True)
        self.modes.addTab(file_mode, "Transcribe")
        # dictation decodes on the same engine as file jobs, on its owner thread; its
        # settings are the dictation service's (dictate.json)
        dictation_engine = self.host.dictation_engine(lambda: self.choices)
        self.dictation = DictationWidget(engine_provider=lambda: dictation_engine)
        self.dictation.worker.notice.connect(lambda m, _e: log.info("dictation: %s", m))
        self.dictation.worker.started.connect(lambda _wav: self.perf.reset(*self._engine_names()))
        self.modes.addTab(self.dictation, "Dictation")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.modes)
        self.splitter.addWidget(self.perf)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([560, 840])
        self.setCentralWidget(self.splitter)

        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setObjectName("progress")
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(220)
        self.progress.setFormat("%p%")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the transcription and keep the text so far (Esc)")
        self.cancel_button.clicked.connect(self.cancel)
        self.engine_label = QLabel("")
        self.engine_label.setObjectName("engine_label")
        sb.addPermanentWidget(self.engine_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)

    def _build_actions(self) -> None:
        def act(text: str, slot: Callable, shortcut: Any = None, tip: str = "", icon: str = "") -> QAction:
            a = QAction(text, self)
            if icon:
                a.setIcon(QIcon.fromTheme(icon))
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
                a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if tip:
                a.setToolTip(tip)
                a.setStatusTip(tip)
            a.triggered.connect(lambda *_: slot())
            self.addAction(a)
            return a

        self.act_open = act("&Open…", self.open_dialog, QKeySequence.StandardKey.Open, "Open an audio or video file (Ctrl+O)", "document-open")
        self.act_record = act("&Record", self.record.toggle, "Ctrl+R", "Start or stop recording from the microphone (Ctrl+R)", "media-record")
        self.act_cancel = act("&Cancel", self.cancel, Qt.Key.Key_Escape, "Cancel the transcription, keep the text so far (Esc)", "process-stop")
        self.act_export = act("&Export Transcript…", self.export_dialog, "Ctrl+E", "Save the transcript as txt, srt, vtt or json (Ctrl+E)", "document-save-as")
        self.act_export_timings = act("Export &Timings…", self.export_timings_dialog, "Ctrl+Shift+E", "Save every timed dispatch: our JSON with summaries, or a Chrome trace for ui.perfetto.dev")
        self.act_export_png = act("Export Performance &Panel (PNG)…", self.export_png_dialog, None, "Save a picture of the performance panel")
        self.act_quit = act("&Quit", self.close, QKeySequence.StandardKey.Quit, "Quit", "application-exit")
        self.act_copy = act("&Copy", self.transcript.copy, QKeySequence.StandardKey.Copy, "Copy the selected segments", "edit-copy")
        self.act_select_all = act("Select &All", self.transcript.select_all, QKeySequence.StandardKey.SelectAll, "", "edit-select-all")
        self.act_find = act("&Find…", self.transcript.open_find, QKeySequence.StandardKey.Find, "Find in the transcript (Ctrl+F)", "edit-find")
        self.act_log = act("Show &Log File", self._show_log, None, "Where errors are logged")
        self.act_about = act("&About", self._about, None, "")
        # the copy/select-all shortcuts belong to the focused widget when it is a text field
        for a in (self.act_copy, self.act_select_all):
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.transcript.addAction(a)

    def _build_menus_and_toolbars(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &Recent")
        m.addAction(self.act_record)
        m.addSeparator()
        m.addAction(self.act_export)
        m.addAction(self.act_export_timings)
        m.addAction(self.act_export_png)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        m.addAction(self.act_copy)
        m.addAction(self.act_select_all)
        m.addAction(self.act_find)
        m = mb.addMenu("&Transcription")
        m.addAction(self.act_cancel)
        m = mb.addMenu("&Help")
        m.addAction(self.act_log)
        m.addAction(self.act_about)
        self._rebuild_recent()

        tb = QToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.setIconSize(QSize(18, 18))
        for a in (self.act_open, self.act_record, self.act_cancel, self.act_export):
            tb.addAction(a)
        tb.addSeparator()
        tb.addWidget(self.options)
        self.addToolBar(tb)

    def add_mode(self, widget: QWidget, title: str) -> int:
        """Add a mode (e.g. Dictation) as another tab; the tab bar appears with the second."""
        index = self.modes.addTab(widget, title)
        self.modes.tabBar().setVisible(self.modes.count() > 1)
        return index

    # -- status and errors ---------------------------------------------------------------
    def status(self, message: str, timeout_ms: int = 0) -> None:
        self.statusBar().showMessage(message, timeout_ms)

    @Slot(str)
    def show_error(self, message: str) -> None:
        """Show an error in the status bar and a non-modal dialog, and log it."""
        log.error(message)
        self.errors.append(message)
        self.status(f"Error: {message}")
        if self.dialogs:
            box = QMessageBox(QMessageBox.Icon.Warning, "NPU Whisper", message, QMessageBox.StandardButton.Ok, self)
            box.setInformativeText(f"Details are in the log: {log_file()}")
            box.setWindowModality(Qt.WindowModality.NonModal)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.finished.connect(lambda *_: self._message_boxes.remove(box) if box in self._message_boxes else None)
            self._message_boxes.append(box)
            box.show()

    def _update_actions(self) -> None:
        busy = self.host.busy
        self.act_cancel.setEnabled(busy)
        self.cancel_button.setEnabled(busy)  # always shown: no relayout when a job starts
        self.progress.setEnabled(busy)
        if not busy:
            self.progress.setValue(0)
            self.progress.setFormat("idle")
        has_result = self.last_result is not None
        self.act_export.setEnabled(has_result)
        self.act_export_timings.setEnabled(has_result)
        self.act_record.setText("Stop &Recording" if self.record.recording else "&Record")

    # -- choices -------------------------------------------------------------------------
    def _save_choices(self) -> None:
        self.options.read(self.choices)
        self.choices.input_device = self.record.device_name()
        self.settings.save(self.choices)

    def _reload_engine(self) -> None:
        self._save_choices()
        self.host.preload(self.choices.model, self.choices.device)

    def _options(self) -> TranscribeOptions:
        c = self.choices
        # first_batch_size 1: the first segments show once the first chunk is decoded
        return TranscribeOptions(
            language=c.language, task=c.task, word_timestamps=c.word_timestamps, short_window=c.short_window,
            batched=False if c.sequential else None, first_batch_size=1,
        )

    # -- audio in --------------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = str(Path(self.choices.recent_files[0]).parent) if self.choices.recent_files else ""
        paths, _ = QFileDialog.getOpenFileNames(self, "Open audio or video", start, AUDIO_FILTER)
        for p in paths:
            self.open_file(p)

    def open_file(self, path: str | Path) -> Job | None:
        """Queue a file for transcription (it is checked by the worker; errors are shown)."""
        p = Path(path)
        if not p.exists():
            self.show_error(f"{p}: file not found")
            self.choices.recent_files = [r for r in self.choices.recent_files if r != str(p)]
            self._rebuild_recent()
            return None
        self.choices.recent_files = add_recent(self.choices.recent_files, str(p.resolve()))
        self._rebuild_recent()
        return self.transcribe(str(p.resolve()))

    def transcribe(self, path: str, kind: str = "file") -> Job:
        self._save_choices()
        c = self.choices
        job = Job(source=str(path), model=c.model, device=c.device, options=self._options(), kind=kind)
        self.jobs[job.id] = job
        self.host.submit(job)
        queued = len(self.host.pending) - 1
        self.status(f"Queued {Path(path).name}" + (f" ({queued} ahead)" if queued > 0 else ""))
        self._update_actions()
        return job

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.choices.recent_files:
            a = self.recent_menu.addAction(Path(path).name)
            a.setToolTip(path)
            a.setStatusTip(path)
            a.triggered.connect(lambda *_, p=path: self.open_file(p))
        self.recent_menu.setEnabled(bool(self.choices.recent_files))
        if self.choices.recent_files:
            self.recent_menu.addSeparator()
            clear = self.recent_menu.addAction("Clear List")
            clear.triggered.connect(self._clear_recent)

    def _clear_recent(self) -> None:
        self.choices.recent_files = []
        self.settings.save(self.choices)
        self._rebuild_recent()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt API)
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_file(url.toLocalFile())
        event.acceptProposedAction()

    # -- worker signals --------------------------------------------------------------------
    def _on_engine_loading(self, model: str, device: str) -> None:
        self.engine_label.setText(f"Loading {model} on {device}…")
        self.status(f"Loading model {model} on {device}…")

    def _on_engine_ready(self, info: dict) -> None:
        self.engine_info = info
        self.engine_label.setText(f"{info['model']} on {info['device']}")
        self.perf.set_engine(info["device"], info["model"])
        self.status(f"Ready: {info['model']} on {info['device']}", 5000)
        for notice in info.get("notices", []):
            self._on_notice(notice)

    def _on_engine_failed(self, message: str) -> None:
        self.engine_info = None
        self.engine_label.setText("No model loaded")
        self.show_error(f"Cannot load the model: {message}")

    def _on_notice(self, message: str) -> None:
        log.warning(message)
        self.status(message, 10000)

    def _on_job_started(self, job_id: int, source: str) -> None:
        self.shown_job = job_id
        job = self.jobs.get(job_id)
        self.transcript.clear()
        self.perf.reset(*(self._engine_names()))
        name = Path(source).name
        self.source_label.setText(f"<b>{name}</b> — transcribing…")
        self.setWindowTitle(f"{name} — NPU Whisper")
        self.progress.setValue(0)
        self.status(f"Transcribing {name}" + (" (recording)" if job and job.kind == "recording" else ""))
        self._update_actions()

    def _engine_names(self) -> tuple[str, str]:
        if self.engine_info:
            return self.engine_info["device"], self.engine_info["model"]
        return "", ""

    def _on_progress(self, job_id: int, done: float, total: float) -> None:
        if job_id != self.shown_job:
            return
        self.progress.setValue(int(1000 * done / total) if total > 0 else 0)
        self.progress.setFormat(f"%p%  {format_timestamp(done)[:-4]} / {format_timestamp(total)[:-4]}")
        self.perf.set_progress(done, total)

    def _on_segment(self, job_id: int, seg: dict) -> None:
        if job_id == self.shown_job:
            self.transcript.add_segment(seg)

    def _on_timings(self, job_id: int, batch: list) -> None:
        if job_id == self.shown_job or job_id == 0:  # 0: a dictated utterance
            self.perf.add_timings(batch)

    def _on_job_finished(self, job_id: int, result: Any) -> None:
        self.results[job_id] = result
        self.last_result = result
        self.jobs.pop(job_id, None)
        if job_id == self.shown_job:
            self.transcript.set_segments(result.segments)
            self.perf.set_final(result.realtime_factor)
        name = Path(result.source).name
        if result.cancelled:
            self.source_label.setText(f"<b>{name}</b> — cancelled, {len(result.segments)} segments kept")
            self.status(f"Cancelled {name}; the transcript so far is kept.")
        else:
            self.source_label.setText(
                f"<b>{name}</b> — {result.duration_s:.1f} s of audio in {result.elapsed_s:.1f} s "
                f"({result.realtime_factor:.1f}× real time, encoder {result.encoder_s:.1f} s, {result.device})"
            )
            self.status(f"Done: {name}", 10000)
        for notice in result.notices:
            self._on_notice(notice)
        log.info("job %s done: %s (%.1f s audio, %.1f s, cancelled=%s)", job_id, result.source, result.duration_s, result.elapsed_s, result.cancelled)
        self._update_actions()

    def _on_job_failed(self, job_id: int, message: str) -> None:
        job = self.jobs.pop(job_id, None)
        self._update_actions()
        if job is not None and job.cancel.is_set():
            self.status(f"Cancelled {Path(job.source).name}")
            return
        name = Path(job.source).name if job else "job"
        if job_id == self.shown_job:
            self.source_label.setText(f"<b>{name}</b> — failed")
        self.show_error(f"Could not transcribe {name}: {message}")

    # -- cancel ---------------------------------------------------------------------------
    def cancel(self) -> None:
        if self.host.cancel():
            self.status("Cancelling…")

    # -- export ---------------------------------------------------------------------------
    def _default_stem(self) -> str:
        return Path(self.last_result.source).stem if self.last_result is not None else "transcript"

    def export_dialog(self) -> None:
        if self.last_result is None:
            return
        filters = ";;".join(EXPORT_FILTERS.values())
        start = str(Path(self.last_result.source).with_suffix(".srt"))
        path, chosen = QFileDialog.getSaveFileName(self, "Export transcript", start, filters)
        if path:
            fmt = next((k for k, v in EXPORT_FILTERS.items() if v == chosen), "srt")
            self.export_transcript(path, fmt)

    def export_transcript(self, path: str | Path, fmt: str | None = None) -> Path | None:
        """Write the last transcript with the CLI's writers; the format follows the suffix."""
        if self.last_result is None:
            self.show_error("Nothing to export yet.")
            return None
        p = Path(path)
        suffix = p.suffix.lstrip(".").lower()
        if suffix in EXPORT_FILTERS:
            fmt = suffix
        else:
            fmt = fmt or "srt"
            p = p.with_name(f"{p.name}.{fmt}")
        word_opts = {"highlight_words": False}
        try:
            written = output.write_outputs(self.last_result.result, p, p.parent, [fmt], word_opts)
        except Exception as exc:
            log.exception("export failed")
            self.show_error(f"Could not export to {p}: {exc}")
            return None
        self.status(f"Saved {written[0]}", 8000)
        return written[0]

    def export_timings_dialog(self) -> None:
        if self.last_result is None:
            return
        chosen = ask_timings_path(self, self.last_result.source)
        if chosen:
            self.export_timings(*chosen)

    def export_timings(self, path: str | Path, fmt: str | None = None) -> Path | None:
        """Save the last job's timings as our JSON or a Chrome trace (``fmt``; None: by name)."""
        r = self.last_result
        if r is None:
            self.show_error("No timings to export yet.")
            return None
        extra = {"job": {"source": r.source, "device": r.device, "model": r.model, "duration_s": r.duration_s,
                         "elapsed_s": r.elapsed_s, "encoder_s": r.encoder_s, "realtime_factor": r.realtime_factor,
                         "cancelled": r.cancelled}}
        try:
            export_timings(r.events, path, fmt, extra)
        except OSError as exc:
            self.show_error(f"Could not save timings to {path}: {exc}")
            return None
        self.status(f"Saved timings to {path}", 8000)
        return Path(path)

    def export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export performance panel", f"{self._default_stem()}-performance.png", "PNG image (*.png)")
        if path:
            self.export_panel_png(path)

    def export_panel_png(self, path: str | Path) -> bool:
        ok = self.perf.save_png(path)
        if ok:
            self.status(f"Saved {path}", 8000)
        else:
            self.show_error(f"Could not save {path}")
        return ok

    # -- misc -----------------------------------------------------------------------------
    def _show_log(self) -> None:
        QMessageBox.information(self, "Log file", f"Errors and job summaries are logged to:\n{log_file()}")

    def _about(self) -> None:
        QMessageBox.about(self, "About NPU Whisper", "Whisper speech recognition with the encoder on an accelerator,\n"
                          "showing where the time goes per layer, op and attention tile.")

    def _restore_geometry(self) -> None:
        geometry, state = self.settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        if self.record.recording:
            self.record.stop()
        self.dictation.shutdown()
        self._save_choices()
        self.settings.save_geometry(self.saveGeometry(), self.saveState())
        self.host.shutdown()
        super().closeEvent(event)

"""The job's choices: model, device, language, task, word timestamps, openai-whisper's loop
(and its short window)."""

from __future__ import annotations

import logging

from PySide6.QtCore import Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QWidget

from ..catalog import probe_all
from .settings import Choices

log = logging.getLogger(__name__)

FALLBACK_MODELS = ("tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium", "large-v3", "turbo")


def model_rows() -> list[dict]:
    """Models the app can offer: the resolver's list, else openai-whisper's names."""
    try:
        from ..catalog import available_models

        rows = [r if isinstance(r, dict) else {"name": str(r)} for r in available_models()]
        if rows:
            return rows
    except Exception as exc:  # the resolver may be missing or fail; offer the names anyway
        log.info("model list unavailable (%s); offering openai-whisper's names", exc)
    return [{"name": n} for n in FALLBACK_MODELS]


def language_items() -> list[tuple[str, str | None]]:
    from whisper.tokenizer import LANGUAGES

    return [("Detect language", None)] + sorted(((name.title(), code) for code, name in LANGUAGES.items()))


class OptionsBar(QWidget):
    """A row of combo boxes; ``changed`` fires on any user change."""

    changed = Signal()
    engine_changed = Signal()  # model or device: the worker must reload

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = QComboBox()
        self.model.setObjectName("model")
        self.model.setToolTip("Whisper model (smaller is faster; .en models are English-only)")
        self.device = QComboBox()
        self.device.setObjectName("device")
        self.device.setToolTip("Where the encoder runs")
        self.language = QComboBox()
        self.language.setObjectName("language")
        self.language.setToolTip("Spoken language (detect: the model decides)")
        self.task = QComboBox()
        self.task.setObjectName("task")
        self.task.addItem("Transcribe", "transcribe")
        self.task.addItem("Translate to English", "translate")
        self.word_timestamps = _checkbox("word_timestamps", "Word timestamps")
        self.sequential = _checkbox(
            "sequential", "openai-whisper's loop",
            "Transcribe 30 s windows one after another with the previous text as the prompt, as "
            "openai-whisper does: its exact words. Off (the default): the speech is cut at pauses and "
            "the pieces are decoded together, faster and, in our measurements, closer to what was said",
        )
        self.short_window = _checkbox(
            "short_window", "Short window",
            "With openai-whisper's loop: encode each 30 s window only over its audio (+3 s, at least "
            "12 s): about twice as fast on short clips, but some words can change (the default mode "
            "trims its windows anyway)",
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        for label, widget in (("Model:", self.model), ("Device:", self.device), ("Language:", self.language), ("Task:", self.task)):
            layout.addWidget(QLabel(label))
            layout.addWidget(widget)
            layout.addSpacing(6)
        layout.addWidget(self.word_timestamps)
        layout.addWidget(self.sequential)
        layout.addWidget(self.short_window)
        self.populate()
        for combo in (self.language, self.task):
            combo.currentIndexChanged.connect(self.changed)
        self.word_timestamps.toggled.connect(self.changed)
        self.short_window.toggled.connect(self.changed)
        self.sequential.toggled.connect(self.changed)
        self.sequential.toggled.connect(self.short_window.setEnabled)
        self.model.currentIndexChanged.connect(self._english_only)
        for combo in (self.model, self.device):
            combo.currentIndexChanged.connect(self.changed)
            combo.currentIndexChanged.connect(self.engine_changed)

    def populate(self) -> None:
        for row in model_rows():
            name = str(row.get("name", ""))
            if not name:
                continue
            installed = row.get("installed", True)
            self.model.addItem(name if installed else f"{name} (download)", name)
            tip = f"{row.get('source', '')}: {row['path']}" if row.get("path") else "downloaded on first use"
            self.model.setItemData(self.model.count() - 1, tip, 3)  # Qt.ToolTipRole
        self._fill_devices()
        for text, code in language_items():
            self.language.addItem(text, code)

    def _english_only(self) -> None:
        """English-only models (.en) take no language choice and do not translate."""
        english = str(self.model.currentData() or "").endswith(".en")
        self.language.setEnabled(not english)
        self.task.setEnabled(not english)
        self.language.setToolTip("English-only model" if english else "Spoken language (detect: the model decides)")

    def _fill_devices(self) -> None:
        model = QStandardItemModel(self.device)
        auto = QStandardItem("auto")
        auto.setData("auto")
        auto.setToolTip("The NPU when one is found, else cpu")
        model.appendRow(auto)
        for info in probe_all():
            item = QStandardItem(info.name)
            item.setData(info.name)
            if info.available:
                item.setToolTip(info.description or info.name)
            else:
                item.setEnabled(False)
                item.setToolTip(f"Unavailable: {info.reason}")
            model.appendRow(item)
        self.device.setModel(model)

    def device_item(self, name: str) -> QStandardItem | None:
        model: QStandardItemModel = self.device.model()  # type: ignore[assignment]
        for r in range(model.rowCount()):
            if model.item(r).data() == name:
                return model.item(r)
        return None

    # -- values --------------------------------------------------------------------------
    def apply(self, c: Choices) -> None:
        """Show saved choices without firing ``changed``."""
        widgets = (self.model, self.device, self.language, self.task, self.word_timestamps, self.sequential, self.short_window)
        for w in widgets:
            w.blockSignals(True)
        try:
            idx = self.model.findData(c.model)
            if idx < 0:
                self.model.addItem(c.model, c.model)
                idx = self.model.count() - 1
            self.model.setCurrentIndex(idx)
            item = self.device_item(c.device)
            self.device.setCurrentIndex(item.row() if item is not None and item.isEnabled() else 0)
            self.language.setCurrentIndex(max(self.language.findData(c.language), 0) if c.language else 0)
            self.task.setCurrentIndex(max(self.task.findData(c.task), 0))
            self.word_timestamps.setChecked(c.word_timestamps)
            self.short_window.setChecked(c.short_window)
            self.sequential.setChecked(c.sequential)
            self.short_window.setEnabled(c.sequential)
        finally:
            for w in widgets:
                w.blockSignals(False)
        self._english_only()

    def read(self, into: Choices) -> Choices:
        into.model = self.model.currentData() or into.model
        item = self.device_item(self.device.currentText())
        into.device = item.data() if item is not None else "auto"
        into.language = self.language.currentData()
        into.task = self.task.currentData() or "transcribe"
        into.word_timestamps = self.word_timestamps.isChecked()
        into.short_window = self.short_window.isChecked()
        into.sequential = self.sequential.isChecked()
        return into


def _checkbox(name: str, text: str, tip: str = "") -> QCheckBox:
    box = QCheckBox(text)
    box.setObjectName(name)
    if tip:
        box.setToolTip(tip)
    return box

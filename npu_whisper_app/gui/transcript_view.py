"""The transcript: one row per segment (start, end, text), with copy, select all and find."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


def format_timestamp(seconds: float) -> str:
    """``h:mm:ss.mmm`` below 1 h shown as ``mm:ss.mmm``."""
    ms = int(round(max(seconds, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}" if h else f"{m:02d}:{s:02d}.{ms:03d}"


class FindBar(QWidget):
    """A find-in-transcript bar (Ctrl+F shows it, Esc/× hides it)."""

    find = Signal(str, int)  # text, step: 0 from the current row, 1 next, -1 previous

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("Find in transcript")
        self.edit.setClearButtonEnabled(True)
        self.status = QLabel("")
        prev_btn = QPushButton("Previous")
        next_btn = QPushButton("Next")
        close = QToolButton()
        close.setText("×")
        close.setToolTip("Close (Esc)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Find:"))
        layout.addWidget(self.edit, 1)
        layout.addWidget(prev_btn)
        layout.addWidget(next_btn)
        layout.addWidget(self.status)
        layout.addWidget(close)
        self.edit.returnPressed.connect(lambda: self.find.emit(self.edit.text(), 1))
        self.edit.textChanged.connect(lambda t: self.find.emit(t, 0))
        next_btn.clicked.connect(lambda: self.find.emit(self.edit.text(), 1))
        prev_btn.clicked.connect(lambda: self.find.emit(self.edit.text(), -1))
        close.clicked.connect(self.hide)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self.edit, activated=self.hide)

    def open(self) -> None:
        self.show()
        self.edit.setFocus()
        self.edit.selectAll()


class TranscriptView(QWidget):
    """Segments appear as each window finishes; the finished result replaces them."""

    COLUMNS = ("Start", "End", "Text")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("transcript")
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setWordWrap(True)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.find_bar = FindBar()
        self.find_bar.hide()
        self.find_bar.find.connect(self.find_text)
        self.placeholder = QLabel("Open an audio or video file (Ctrl+O), drop one here, or record (Ctrl+R).")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: gray;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.placeholder)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.find_bar)
        self.table.hide()
        self.segments: list[dict] = []

    # -- content -------------------------------------------------------------------------
    def clear(self) -> None:
        self.segments = []
        self.table.setRowCount(0)

    def add_segment(self, seg: dict) -> None:
        self.segments.append(seg)
        row = self.table.rowCount()
        self.table.insertRow(row)
        start = QTableWidgetItem(format_timestamp(float(seg.get("start", 0.0))))
        end = QTableWidgetItem(format_timestamp(float(seg.get("end", 0.0))))
        for item in (start, end):
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            item.setForeground(Qt.GlobalColor.darkGray)
        self.table.setItem(row, 0, start)
        self.table.setItem(row, 1, end)
        self.table.setItem(row, 2, QTableWidgetItem(str(seg.get("text", "")).strip()))
        self.placeholder.hide()
        self.table.show()
        self.table.scrollToBottom()

    def set_segments(self, segments: list[dict]) -> None:
        self.clear()
        for seg in segments:
            self.add_segment(seg)

    def text(self) -> str:
        """The whole transcript as plain text, one segment per line."""
        return "\n".join(str(s.get("text", "")).strip() for s in self.segments)

    # -- edit actions --------------------------------------------------------------------
    def selected_text(self) -> str:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        if not rows:
            return self.text()
        lines = []
        for r in rows:
            start, end, text = (self.table.item(r, c).text() for c in range(3))
            lines.append(f"[{start} --> {end}] {text}" if len(rows) < self.table.rowCount() else text)
        return "\n".join(lines)

    def copy(self) -> None:
        """Copy the selected segments (everything when nothing is selected)."""
        QGuiApplication.clipboard().setText(self.selected_text())

    def select_all(self) -> None:
        self.table.selectAll()

    def open_find(self) -> None:
        self.find_bar.open()

    def find_text(self, text: str, step: int = 1) -> int:
        """Select the next (or previous) row containing ``text``; returns the row or -1."""
        n = self.table.rowCount()
        matches = [r for r in range(n) if text and text.lower() in self.table.item(r, 2).text().lower()]
        if not matches:
            self.find_bar.status.setText("not found" if text else "")
            return -1
        cur = self.table.currentRow()
        if step < 0:
            before = [r for r in matches if r < cur]
            row = before[-1] if before else matches[-1]
        else:
            after = [r for r in matches if (r > cur if step > 0 else r >= max(cur, 0))]
            row = after[0] if after else matches[0]
        self.table.setCurrentCell(row, 2)
        self.table.selectRow(row)
        self.table.scrollToItem(self.table.item(row, 2))
        self.find_bar.status.setText(f"{matches.index(row) + 1} of {len(matches)}")
        return row

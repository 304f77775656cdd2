"""A one-line label that elides its text to the width it is given instead of widening
its window; the full text is in the tooltip."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

MIN_CHARS = "Mmmmm…"  # the narrowest the label asks to be: a few characters and the ellipsis


class ElidedLabel(QLabel):
    """A plain-text QLabel whose minimum width is small: text that does not fit ends in
    "…" (``mode``, right by default), re-elided on every resize. ``text()`` and the
    tooltip hold the full text."""

    def __init__(self, text: str = "", parent: QWidget | None = None, mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight) -> None:
        super().__init__(parent)
        self._full = ""
        self._mode = mode
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(False)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setText(text)

    # -- text ----------------------------------------------------------------------------
    def setText(self, text: str) -> None:
        """Show ``text``, elided to the current width; the tooltip gets it in full."""
        text = text.replace("\n", " ")
        if text == self._full and super().text():
            return
        self._full = text
        self.setToolTip(text)
        self._elide()
        self.updateGeometry()

    def text(self) -> str:
        """The full text (what is shown may be elided)."""
        return self._full

    def shown_text(self) -> str:
        """The text as drawn now (elided to the width)."""
        return super().text()

    def is_elided(self) -> bool:
        return self.shown_text() != self._full

    # -- size ----------------------------------------------------------------------------
    def _margins_width(self) -> int:
        m = self.contentsMargins()
        return m.left() + m.right() + 2 * self.margin()

    def sizeHint(self) -> QSize:
        """Room for the full text (layouts give it when there is space)."""
        fm = self.fontMetrics()
        return QSize(fm.horizontalAdvance(self._full) + self._margins_width() + 2, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        """A few characters wide, whatever the text: a long text never raises the window's minimum."""
        fm = self.fontMetrics()
        return QSize(fm.horizontalAdvance(MIN_CHARS) + self._margins_width(), super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(0, self.contentsRect().width() - 2 * self.margin())
        shown = self.fontMetrics().elidedText(self._full, self._mode, width) if self._full else ""
        if shown != super().text():
            super().setText(shown)

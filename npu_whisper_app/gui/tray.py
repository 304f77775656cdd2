"""The dictation service's face: a tray icon (idle / listening / decoding) where the
desktop has a system tray, else a small status window; neither ever takes the keyboard
focus, so the text still goes to the application the user was typing in.

QSystemTrayIcon speaks StatusNotifierItem (KDE, GNOME with the AppIndicator extension)
or XEmbed; where neither exists ``isSystemTrayAvailable()`` is false and the window is
shown instead. The service (``desktop/service.py``) is Qt-free: its state and notices
arrive here from its threads and are moved onto the GUI thread by signals.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QPushButton, QSystemTrayIcon, QVBoxLayout, QWidget

COLOURS = {"idle": "#8a8a8a", "listening": "#d83b3b", "decoding": "#e0a020"}
LABELS = {"idle": "Dictation: idle", "listening": "Dictation: listening", "decoding": "Dictation: finishing the last words"}


def state_icon(state: str, size: int = 64) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor(COLOURS.get(state, "#8a8a8a")))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawEllipse(size // 8, size // 8, size * 3 // 4, size * 3 // 4)
    p.end()
    return QIcon(pm)


def make_non_focusing(w: QWidget) -> None:
    """Shown and clicked without taking the keyboard focus from the target window."""
    w.setWindowFlag(Qt.WindowType.WindowDoesNotAcceptFocus, True)
    w.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
    w.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating, True)
    w.setFocusPolicy(Qt.FocusPolicy.NoFocus)


class StatusWindow(QWidget):
    """Where there is no tray: state, the last notice, a toggle button; never focused."""

    def __init__(self, toggle, quit_) -> None:
        super().__init__()
        self.setWindowTitle("npu-whisper dictation")
        make_non_focusing(self)
        self.icon = QLabel()
        self.label = QLabel(LABELS["idle"])
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.button = QPushButton("Start")
        self.button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.button.clicked.connect(toggle)
        quit_button = QPushButton("Quit")
        quit_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        quit_button.clicked.connect(quit_)
        top = QHBoxLayout()
        top.addWidget(self.icon)
        top.addWidget(self.label, 1)
        top.addWidget(self.button)
        top.addWidget(quit_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.notice)
        self.set_state("idle")

    def set_state(self, state: str) -> None:
        self.icon.setPixmap(state_icon(state).pixmap(16, 16))
        self.label.setText(LABELS.get(state, state))
        self.button.setText("Stop" if state == "listening" else "Start")
        self.button.setEnabled(state != "decoding")


class DictationTray(QObject):
    """``service`` has ``state`` and ``toggle()``; call :meth:`attach` before starting it
    so its ``on_state``/``on_notice`` reach this object."""

    state_changed = Signal(str)
    notice = Signal(str, bool)

    def __init__(self, service, quit_callback, hotkey_hint: str = "", force_window: bool = False) -> None:
        super().__init__()
        self.service = service
        self._quit = quit_callback
        self.hotkey_hint = hotkey_hint
        self.tray: QSystemTrayIcon | None = None
        self.window: StatusWindow | None = None
        if QSystemTrayIcon.isSystemTrayAvailable() and not force_window:
            self.tray = QSystemTrayIcon(state_icon("idle"))
            menu = QMenu()
            self._toggle_action = QAction("Start dictation", menu)
            self._toggle_action.triggered.connect(self.service.toggle)
            menu.addAction(self._toggle_action)
            quit_action = QAction("Quit", menu)
            quit_action.triggered.connect(quit_callback)
            menu.addAction(quit_action)
            self._menu = menu
            self.tray.setContextMenu(menu)
            self.tray.activated.connect(self._activated)
            self.tray.show()
        else:
            self.window = StatusWindow(self.service.toggle, quit_callback)
            self.window.show()
        self.state_changed.connect(self._show_state, Qt.ConnectionType.QueuedConnection)
        self.notice.connect(self._show_notice, Qt.ConnectionType.QueuedConnection)
        self._show_state("idle")

    # the service's callbacks (any thread)
    def on_state(self, state: str) -> None:
        self.state_changed.emit(state)

    def on_notice(self, message: str, error: bool) -> None:
        self.notice.emit(message, error)

    def _activated(self, reason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.service.toggle()

    def _show_state(self, state: str) -> None:
        tip = LABELS.get(state, state) + (f" ({self.hotkey_hint})" if self.hotkey_hint else "")
        if self.tray is not None:
            self.tray.setIcon(state_icon(state))
            self.tray.setToolTip(tip)
            self._toggle_action.setText("Stop dictation" if state == "listening" else "Start dictation")
            self._toggle_action.setEnabled(state != "decoding")
        if self.window is not None:
            self.window.set_state(state)

    def _show_notice(self, message: str, error: bool) -> None:
        if self.tray is not None:
            icon = QSystemTrayIcon.MessageIcon.Warning if error else QSystemTrayIcon.MessageIcon.Information
            self.tray.showMessage("npu-whisper dictation", message, icon, 8000)
        if self.window is not None:
            self.window.notice.setText(message)

    def close(self) -> None:
        if self.tray is not None:
            self.tray.hide()
        if self.window is not None:
            self.window.close()

"""The dictation service's tray / status window under Xvfb (no system tray there, so the
window): it shows the service's states, toggles it, and never takes the keyboard focus
from the application the user types in (a second X client)."""

from __future__ import annotations

import threading

from desktop_helpers import Target
from PySide6.QtCore import Qt

from npu_whisper_app.desktop.x11 import XTestKeyboard
from npu_whisper_app.gui.tray import DictationTray


class StubService:
    def __init__(self) -> None:
        self.state = "idle"
        self.toggles = 0

    def toggle(self) -> None:
        self.toggles += 1


def test_status_window_shows_states_and_never_takes_the_focus(qtbot, tmp_path) -> None:
    target = Target(tmp_path)
    kb = XTestKeyboard()
    try:
        assert kb.focused_class() == ("npuwtarget", "Npuwtarget")
        svc = StubService()
        quits: list[int] = []
        tray = DictationTray(svc, lambda: quits.append(1))
        assert tray.tray is None and tray.window is not None  # Xvfb has no system tray
        w = tray.window
        qtbot.addWidget(w)
        qtbot.waitExposed(w)
        assert w.windowFlags() & Qt.WindowType.WindowDoesNotAcceptFocus
        assert w.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        # what a window manager reads: ICCCM WM_HINTS input = False (never give it the focus)
        from Xlib import Xutil

        win = kb.d.create_resource_object("window", int(w.winId()))
        hints = win.get_wm_hints()
        assert hints is not None and hints.flags & Xutil.InputHint and hints.input == 0
        # the service reports from its own threads
        threading.Thread(target=tray.on_state, args=("listening",)).start()
        qtbot.waitUntil(lambda: w.label.text() == "Dictation: listening", timeout=5000)
        assert w.button.text() == "Stop"
        tray.on_notice("Your microphone is very quiet", False)
        qtbot.waitUntil(lambda: "very quiet" in w.notice.text(), timeout=5000)
        qtbot.mouseClick(w.button, Qt.MouseButton.LeftButton)
        assert svc.toggles == 1
        tray.on_state("decoding")
        qtbot.waitUntil(lambda: not w.button.isEnabled(), timeout=5000)
        qtbot.wait(200)
        # after showing, updating and clicking, the other application still has the focus
        assert kb.focused_class() == ("npuwtarget", "Npuwtarget")
        tray.close()
    finally:
        kb.close()
        target.close()

"""Starting the app without a display: one line that says what is missing and how to run, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from npu_whisper_app.gui.display import NO_DISPLAY, missing_display

ROOT = Path(__file__).resolve().parents[1]


def test_app_without_a_display_says_so_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "npu_whisper_app.gui"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [NO_DISPLAY] and proc.stdout == ""
    assert "DISPLAY" in NO_DISPLAY and "xvfb-run" in NO_DISPLAY and "npu-whisper transcribe" in NO_DISPLAY


def test_which_environments_have_a_display() -> None:
    assert missing_display({}, platform="linux") == NO_DISPLAY
    assert missing_display({"QT_QPA_PLATFORM": "xcb"}, platform="linux") == NO_DISPLAY
    assert missing_display({"DISPLAY": ":99"}, platform="linux") is None
    assert missing_display({"WAYLAND_DISPLAY": "wayland-0"}, platform="linux") is None
    assert missing_display({"QT_QPA_PLATFORM": "offscreen"}, platform="linux") is None
    assert missing_display({"QT_QPA_PLATFORM": "minimal:enable_fonts"}, platform="linux") is None
    assert missing_display({}, ["-platform", "offscreen"], platform="linux") is None
    assert missing_display({}, platform="darwin") is None and missing_display({}, platform="win32") is None

"""Helpers for the desktop tests (run under xvfb-run): a second X client with a text
field (tests/x11_target.py, another process), the clipboard, XTest keys held."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wait_for(pred, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Target:
    """The other application: a Tk text field in its own process, focused."""

    def __init__(self, tmp_path: Path, wm_class: str = "Npuwtarget") -> None:
        if not os.environ.get("DISPLAY"):
            raise RuntimeError("the desktop tests need an X display: run them under xvfb-run")
        self.out = tmp_path / f"field-{wm_class}.txt"
        self.keys: list[dict] = []
        self.proc = subprocess.Popen([sys.executable, str(HERE / "x11_target.py"), str(self.out), wm_class], stdout=subprocess.PIPE, text=True)
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(30):
            self.close()
            raise RuntimeError("the target window did not come up")

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line == "ready":
                self._ready.set()
            elif line.startswith("{"):
                self.keys.append(json.loads(line))

    def text(self) -> str:
        try:
            return self.out.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def wait_text(self, expected: str, timeout: float = 20.0) -> str:
        try:
            wait_for(lambda: self.text() == expected, timeout, f"the field to read {expected!r}")
        except AssertionError:
            raise AssertionError(f"the field reads {self.text()!r}, expected {expected!r}") from None
        return self.text()

    def presses(self, keysym: str) -> list[dict]:
        """Presses of ``keysym`` (waits for the key log to show the releases that follow)."""
        def logged():
            presses = [k for k in self.keys if k["ev"] == "press" and k["keysym"] == keysym]
            return len(presses) == len([k for k in self.keys if k["ev"] == "release" and k["keysym"] == keysym])
        try:
            wait_for(logged, 5, "the key log")
        except AssertionError:
            pass
        return [k for k in self.keys if k["ev"] == "press" and k["keysym"] == keysym]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def clipboard_text() -> str | None:
    p = subprocess.run(["xclip", "-selection", "clipboard", "-out"], capture_output=True, timeout=5)
    return p.stdout.decode() if p.returncode == 0 else None


def set_clipboard(text: str) -> None:
    subprocess.run(["xclip", "-selection", "clipboard", "-in"], input=text.encode(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5, check=True)


class HeldKeys:
    """Hold keys down through XTest, as a user holding the hotkey's modifiers does."""

    def __init__(self, *keysyms: str) -> None:
        from Xlib import XK, X, display
        from Xlib.ext import xtest

        self._X, self._xtest = X, xtest
        self.d = display.Display()
        self.codes = [self.d.keysym_to_keycode(XK.string_to_keysym(k)) for k in keysyms]

    def press(self) -> None:
        for kc in self.codes:
            self._xtest.fake_input(self.d, self._X.KeyPress, kc)
        self.d.sync()

    def release(self) -> None:
        for kc in reversed(self.codes):
            self._xtest.fake_input(self.d, self._X.KeyRelease, kc)
        self.d.sync()

    def close(self) -> None:
        self.d.close()

"""The system clipboard through command-line tools: ``xclip`` or ``xsel`` on X11,
``wl-copy``/``wl-paste`` (wl-clipboard) on Wayland.

Why not Qt's QClipboard: on Wayland it silently drops writes made while our app has no
focus (which is always the case when dictating into another application), and a
separate process owning the selection keeps serving it even while our event loop is
busy. The tools fork a small process that owns the selection until something else is
copied, as the user's own copy would.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass

from .environment import which


class ClipboardError(Exception):
    pass


@dataclass
class CommandClipboard:
    name: str
    write_cmd: list[str]
    read_cmd: list[str]
    timeout_s: float = 3.0

    def write(self, text: str) -> None:
        # the tool forks a selection owner that inherits our pipes: read its errors from a
        # file, not a pipe (a pipe would not reach EOF until the owner exits)
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(self.write_cmd, input=text.encode("utf-8"), stdout=subprocess.DEVNULL, stderr=err, timeout=self.timeout_s)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ClipboardError(f"{self.name} failed: {exc}") from None
            if proc.returncode != 0:
                err.seek(0)
                msg = err.read().decode("utf-8", "replace").strip()
                raise ClipboardError(f"{self.name} failed: {msg or f'exit status {proc.returncode}'}")

    def read(self) -> str | None:
        """The clipboard's text, or None when it holds no text (empty, an image)."""
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.run(self.read_cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL, timeout=self.timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                return None
            if proc.returncode != 0:
                return None
            out.seek(0)
            return out.read().decode("utf-8", "replace")


def x11_clipboard() -> CommandClipboard | None:
    if which("xclip"):
        return CommandClipboard("xclip", ["xclip", "-selection", "clipboard", "-in"], ["xclip", "-selection", "clipboard", "-out"])
    if which("xsel"):
        return CommandClipboard("xsel", ["xsel", "--clipboard", "--input"], ["xsel", "--clipboard", "--output"])
    return None


def wayland_clipboard() -> CommandClipboard | None:
    if which("wl-copy") and which("wl-paste"):
        return CommandClipboard("wl-copy", ["wl-copy", "--type", "text/plain;charset=utf-8"], ["wl-paste", "--no-newline", "--type", "text"])
    return None

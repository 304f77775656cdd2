"""Keys on Wayland compositors that offer the virtual-keyboard protocol (wlroots: sway,
Hyprland, river, labwc, ...), through ``wtype``. GNOME and KDE do not offer it; there
the XDG RemoteDesktop portal is the way (``portal_keyboard.py``).

Wayland gives a client no way to read the keyboard state, so held modifiers cannot be
waited for: wtype releases any modifier it pressed, and the paste is delayed by
``settle_s`` after the final is decided, by which time a hotkey is normally released.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence

from .environment import which
from .x11 import KeyboardError

_MODS = {"Control_L": "ctrl", "Control_R": "ctrl", "Shift_L": "shift", "Shift_R": "shift", "Alt_L": "alt", "Super_L": "logo"}


class WtypeKeyboard:
    name = "wtype"

    def __init__(self, settle_s: float = 0.15) -> None:
        if not which("wtype"):
            raise KeyboardError("wtype is not installed")
        self.settle_s = settle_s

    def close(self) -> None:
        pass

    def _run(self, *args: str) -> None:
        try:
            proc = subprocess.run(["wtype", *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KeyboardError(f"wtype failed: {exc}") from None
        if proc.returncode != 0:
            # e.g. "Compositor does not support the virtual keyboard protocol" (GNOME, KDE)
            raise KeyboardError(f"wtype failed: {proc.stderr.strip() or proc.returncode}")

    def wait_modifiers_released(self, timeout_s: float) -> bool:
        time.sleep(min(timeout_s, self.settle_s))
        return True

    def release_modifiers(self) -> None:
        pass

    def focused_class(self) -> tuple[str, str] | None:
        """The focused window's app id on sway (swaymsg) or Hyprland (hyprctl)."""
        try:
            if which("swaymsg"):
                tree = json.loads(subprocess.run(["swaymsg", "-t", "get_tree"], capture_output=True, text=True, timeout=3).stdout)
                node = _focused(tree)
                if node:
                    app = node.get("app_id") or (node.get("window_properties") or {}).get("class") or ""
                    return (app, app)
            if which("hyprctl"):
                w = json.loads(subprocess.run(["hyprctl", "activewindow", "-j"], capture_output=True, text=True, timeout=3).stdout)
                return (w.get("initialClass", ""), w.get("class", ""))
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return None
        return None

    def chord(self, keys: Sequence[str]) -> None:
        mods = [_MODS.get(k) for k in keys[:-1]]
        if None in mods:
            raise KeyboardError(f"wtype cannot press {keys}")
        args: list[str] = ["-s", "60"]  # see type_text
        for m in mods:
            args += ["-M", m]
        args += ["-k", keys[-1]]
        for m in reversed(mods):
            args += ["-m", m]
        self._run(*args)

    def type_text(self, text: str, delay_s: float = 0.004) -> None:
        # a pause after wtype uploads its keymap: without it the first character was
        # sometimes lost (the client had not taken the new keymap yet)
        self._run("-s", "60", "--", text)


def _focused(node: dict) -> dict | None:
    if node.get("focused"):
        return node
    for child in node.get("nodes", []) + node.get("floating_nodes", []):
        f = _focused(child)
        if f:
            return f
    return None

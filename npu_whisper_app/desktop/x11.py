"""Keys into the focused X11 window through the XTest extension (python-xlib), or
through ``xdotool`` where python-xlib is not installed.

Why XTest: its events go through the X server exactly like the keyboard's, to whatever
window has the input focus, so every toolkit accepts them (XSendEvent's synthetic
events are ignored by xterm and many others). python-xlib is pure Python (no build
step), maintained, and also gives the key grab the hotkey needs; xdotool is the same
XTest underneath, as a command.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

from .environment import which

MODIFIER_KEYSYMS = (
    "Shift_L", "Shift_R", "Control_L", "Control_R", "Alt_L", "Alt_R", "Meta_L", "Meta_R",
    "Super_L", "Super_R", "Hyper_L", "Hyper_R", "ISO_Level3_Shift",
)

_SPECIAL = {"\n": "Return", "\t": "Tab", " ": "space", "\b": "BackSpace"}


class KeyboardError(Exception):
    pass


class XTestKeyboard:
    """Paste chords, typing, held modifiers and the focused window's class, on X11."""

    name = "XTest"

    def __init__(self, display_name: str | None = None) -> None:
        try:
            from Xlib import XK
            from Xlib import display as xdisplay
            from Xlib.error import DisplayError
        except ImportError:
            raise KeyboardError("python-xlib is not installed (pip install python-xlib)") from None
        try:
            self.d = xdisplay.Display(display_name)
        except (DisplayError, Exception) as exc:  # bad DISPLAY, no server, no authority
            raise KeyboardError(f"cannot open the X display: {exc}") from None
        if not self.d.has_extension("XTEST"):
            self.d.close()
            raise KeyboardError("the X server has no XTEST extension")
        self._XK = XK
        self._modifier_codes = {self._keycode(k) for k in MODIFIER_KEYSYMS} - {0}

    def close(self) -> None:
        try:
            self.d.close()
        except Exception:
            pass

    # -- state ---------------------------------------------------------------------------
    def _keycode(self, keysym_name: str) -> int:
        return self.d.keysym_to_keycode(self._XK.string_to_keysym(keysym_name))

    def held_modifiers(self) -> list[int]:
        """Keycodes of modifier keys down now (the hotkey's, typically)."""
        keymap = self.d.query_keymap()
        return [kc for kc in self._modifier_codes if keymap[kc // 8] & (1 << (kc % 8))]

    def wait_modifiers_released(self, timeout_s: float) -> bool:
        """Wait until no modifier key is down; True if none is, False after the timeout
        (the keys still held are then released by XTest before pasting)."""
        deadline = time.monotonic() + timeout_s
        while self.held_modifiers():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def release_modifiers(self) -> None:
        from Xlib import X
        from Xlib.ext import xtest

        for kc in self.held_modifiers():
            xtest.fake_input(self.d, X.KeyRelease, kc)
        self.d.sync()

    def focused_class(self) -> tuple[str, str] | None:
        """(instance, class) of the window with the input focus (or its nearest ancestor
        that has a WM_CLASS), else of the window manager's active window
        (_NET_ACTIVE_WINDOW); None when there is none."""
        try:
            cls = self._class_up(self.d.get_input_focus().focus)
            if cls:
                return cls
            root = self.d.screen().root
            prop = root.get_full_property(self.d.intern_atom("_NET_ACTIVE_WINDOW"), 0)
            if prop is not None and prop.value and prop.value[0]:
                return self._class_up(self.d.create_resource_object("window", int(prop.value[0])))
        except Exception:
            return None
        return None

    @staticmethod
    def _class_up(win) -> tuple[str, str] | None:
        for _ in range(16):
            if isinstance(win, int) or win is None:
                return None
            cls = win.get_wm_class()
            if cls:
                return cls
            tree = win.query_tree()
            if tree.parent == 0 or tree.parent == tree.root:
                return None
            win = tree.parent
        return None

    # -- input ---------------------------------------------------------------------------
    def chord(self, keys: Sequence[str]) -> None:
        """Press ``keys`` (keysym names: modifiers first) and release them in reverse."""
        from Xlib import X
        from Xlib.ext import xtest

        codes, spare = [], None
        for k in keys:
            kc = self._keycode(k)
            if not kc and spare is None and len(k) == 1:
                # the layout has no such key (V on a Cyrillic layout): map it for the moment
                spare = kc = self._spare_keycode()
                keysym = self._keysym(k)
                self.d.change_keyboard_mapping(kc, [(keysym, keysym)])
                self.d.sync()
                time.sleep(0.02)
            if not kc:
                raise KeyboardError(f"no key for {k!r} in the keyboard layout")
            codes.append(kc)
        for kc in codes:
            xtest.fake_input(self.d, X.KeyPress, kc)
        for kc in reversed(codes):
            xtest.fake_input(self.d, X.KeyRelease, kc)
        self.d.sync()
        if spare is not None:
            time.sleep(0.02)
            self.d.change_keyboard_mapping(spare, [(0, 0)])
            self.d.sync()

    def type_text(self, text: str, delay_s: float = 0.004) -> None:
        """Type ``text`` key by key. A character the layout lacks is mapped for the moment
        onto a spare keycode (as xdotool does), so any Unicode character can be typed."""
        from Xlib import X
        from Xlib.ext import xtest

        shift = self._keycode("Shift_L")
        for ch in text:
            keysym = self._keysym(ch)
            found = [(kc, idx) for kc, idx in self.d.keysym_to_keycodes(keysym) if idx in (0, 1)]
            spare = None
            if found:
                kc, idx = found[0]
            else:
                spare = kc = self._spare_keycode()
                idx = 0
                self.d.change_keyboard_mapping(kc, [(keysym, keysym)])
                self.d.sync()
                time.sleep(0.02)  # let clients see the mapping change before the key
            if idx == 1:
                xtest.fake_input(self.d, X.KeyPress, shift)
            xtest.fake_input(self.d, X.KeyPress, kc)
            xtest.fake_input(self.d, X.KeyRelease, kc)
            if idx == 1:
                xtest.fake_input(self.d, X.KeyRelease, shift)
            self.d.sync()
            if spare is not None:
                time.sleep(0.02)
                self.d.change_keyboard_mapping(spare, [(0, 0)])
                self.d.sync()
            time.sleep(delay_s)

    def _keysym(self, ch: str) -> int:
        if ch in _SPECIAL:
            return self._XK.string_to_keysym(_SPECIAL[ch])
        o = ord(ch)
        return o if 0x20 <= o <= 0xFF else 0x01000000 | o

    def _spare_keycode(self) -> int:
        first = self.d.display.info.min_keycode
        count = self.d.display.info.max_keycode - first + 1
        for i, syms in enumerate(self.d.get_keyboard_mapping(first, count)):
            if not any(syms):
                return first + i
        raise KeyboardError("no spare keycode to type a character the keyboard layout lacks")


class XdotoolKeyboard:
    """The same through the ``xdotool`` command (no python-xlib)."""

    name = "xdotool"

    def __init__(self) -> None:
        if not which("xdotool"):
            raise KeyboardError("xdotool is not installed")

    def close(self) -> None:
        pass

    def _run(self, *args: str) -> str:
        try:
            proc = subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KeyboardError(f"xdotool failed: {exc}") from None
        if proc.returncode != 0:
            raise KeyboardError(f"xdotool failed: {proc.stderr.strip() or proc.returncode}")
        return proc.stdout

    def wait_modifiers_released(self, timeout_s: float) -> bool:
        return False  # xdotool cannot tell; --clearmodifiers below handles held keys

    def release_modifiers(self) -> None:
        pass

    def focused_class(self) -> tuple[str, str] | None:
        try:
            wid = self._run("getwindowfocus").strip()
            cls = subprocess.run(["xprop", "-id", wid, "WM_CLASS"], capture_output=True, text=True, timeout=5).stdout
        except (KeyboardError, OSError, subprocess.TimeoutExpired):
            return None
        if "=" not in cls:
            return None
        parts = [p.strip().strip('"') for p in cls.split("=", 1)[1].split(",")]
        return (parts[0], parts[-1]) if parts else None

    def chord(self, keys: Sequence[str]) -> None:
        self._run("key", "--clearmodifiers", "+".join(keys))

    def type_text(self, text: str, delay_s: float = 0.004) -> None:
        self._run("type", "--clearmodifiers", "--delay", str(max(1, int(delay_s * 1000))), "--", text)


def x11_keyboard() -> tuple[object | None, str]:
    """The best X11 keyboard available, or (None, why not in plain words)."""
    try:
        return XTestKeyboard(), ""
    except KeyboardError as first:
        try:
            return XdotoolKeyboard(), ""
        except KeyboardError:
            return None, f"{first}, and xdotool is not installed"

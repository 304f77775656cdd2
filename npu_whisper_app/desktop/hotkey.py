"""The global hotkey on X11: a passive key grab on the root window (python-xlib), with
press and release (push-to-talk needs the release).

Wayland gives clients no key grabs. There the desktop's own shortcut settings bind a key
to ``npu-whisper dictate --toggle`` (or ``--start``/``--stop`` for push-to-talk where
the desktop offers press and release bindings, as sway's ``bindsym --release`` does).
The XDG GlobalShortcuts portal (``portal_hotkey.py``) is the other way, on KDE and GNOME 48+.

Hotkeys are written like ``<Ctrl><Alt>d`` or ``ctrl+alt+d`` (modifiers: Ctrl, Alt,
Shift, Super; the key: a keysym name such as ``d``, ``F9``, ``space``).
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable

MODIFIER_NAMES = {"ctrl": "ControlMask", "control": "ControlMask", "alt": "Mod1Mask", "shift": "ShiftMask", "super": "Mod4Mask", "win": "Mod4Mask", "meta": "Mod4Mask"}


class HotkeyError(Exception):
    pass


def parse_hotkey(spec: str) -> tuple[list[str], str]:
    """``"<Ctrl><Alt>d"`` or ``"ctrl+alt+d"`` -> (["ctrl", "alt"], "d")."""
    s = spec.strip()
    mods: list[str] = []
    if s.startswith("<"):
        while s.startswith("<"):
            end = s.find(">")
            if end < 0:
                raise HotkeyError(f"bad hotkey {spec!r}: a '<' without '>'")
            mods.append(s[1:end].lower())
            s = s[end + 1 :]
        key = s
    else:
        parts = [p.strip() for p in s.split("+")]
        mods, key = [p.lower() for p in parts[:-1]], parts[-1]
    bad = [m for m in mods if m not in MODIFIER_NAMES]
    if bad or not key:
        raise HotkeyError(f"bad hotkey {spec!r}: use e.g. <Ctrl><Alt>d or ctrl+alt+d (modifiers: Ctrl, Alt, Shift, Super)")
    return mods, key


class X11Hotkey:
    """Grabs ``spec`` on the X display; ``on_press``/``on_release`` run on its thread."""

    def __init__(self, spec: str, on_press: Callable[[], None], on_release: Callable[[], None] | None = None, display_name: str | None = None) -> None:
        try:
            from Xlib import XK, X
            from Xlib import display as xdisplay
        except ImportError:
            raise HotkeyError("python-xlib is not installed (pip install python-xlib)") from None
        mods, key = parse_hotkey(spec)
        self.spec = spec
        self.on_press, self.on_release = on_press, on_release
        try:
            self.d = xdisplay.Display(display_name)
        except Exception as exc:
            raise HotkeyError(f"cannot open the X display: {exc}") from None
        self._X = X
        keysym = XK.string_to_keysym(key) or XK.string_to_keysym(key.lower())
        self.keycode = self.d.keysym_to_keycode(keysym) if keysym else 0
        if not self.keycode:
            self.d.close()
            raise HotkeyError(f"bad hotkey {spec!r}: no key {key!r} on this keyboard")
        self.mask = 0
        for m in mods:
            self.mask |= getattr(X, MODIFIER_NAMES[m])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down = False

    def start(self) -> None:
        from Xlib import error

        X, root = self._X, self.d.screen().root
        errors: list[str] = []
        catcher = error.CatchError(error.BadAccess)
        # with and without Caps Lock (Lock) and Num Lock (Mod2), which count as modifiers
        for extra in (0, X.LockMask, X.Mod2Mask, X.LockMask | X.Mod2Mask):
            root.grab_key(self.keycode, self.mask | extra, True, X.GrabModeAsync, X.GrabModeAsync, onerror=catcher)
        self.d.sync()
        if catcher.get_error():
            errors.append("another application already uses it")
        if errors:
            self.d.close()
            raise HotkeyError(f"cannot use the hotkey {self.spec}: {errors[0]}; choose another, or bind `npu-whisper dictate --toggle` in your desktop's shortcut settings")
        self._thread = threading.Thread(target=self._loop, name="dictate-hotkey", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        X = self._X
        fd = self.d.fileno()
        while not self._stop.is_set():
            if not self.d.pending_events():
                select.select([fd], [], [], 0.2)
                if not self.d.pending_events():
                    continue
            ev = self.d.next_event()
            if getattr(ev, "detail", None) != self.keycode:
                continue
            if ev.type == X.KeyPress:
                if not self._down:  # auto-repeat sends more presses
                    self._down = True
                    self._call(self.on_press)
            elif ev.type == X.KeyRelease:
                # auto-repeat: a release followed at once by a press at the same time
                nxt = self.d.next_event() if self.d.pending_events() else None
                again = nxt is not None and nxt.type == X.KeyPress and getattr(nxt, "detail", None) == self.keycode
                if again and nxt.time == ev.time:
                    continue
                self._down = False
                self._call(self.on_release)
                if again:
                    self._down = True
                    self._call(self.on_press)

    @staticmethod
    def _call(fn) -> None:
        if fn is None:
            return
        try:
            fn()
        except Exception:
            pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        try:
            root = self.d.screen().root
            X = self._X
            for extra in (0, X.LockMask, X.Mod2Mask, X.LockMask | X.Mod2Mask):
                root.ungrab_key(self.keycode, self.mask | extra)
            self.d.close()
        except Exception:
            pass

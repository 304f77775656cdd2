"""Put text where the user's cursor is, in whichever application has the focus.

Default method ``paste``: the text goes on the clipboard and the paste key is pressed
(Ctrl+V; Ctrl+Shift+V when the focused window is a terminal, from its WM_CLASS / app
id), after the hotkey's modifiers are released; the previous clipboard text is put back
once the target has had time to read ours (``restore_delay_s`` with nothing more to
paste). ``type`` types the text key by key instead (slower; works where paste is
blocked); ``clipboard`` only copies.

If the keys cannot be sent (no XTest, wtype refused by the compositor, ...), the text
stays on the clipboard, every later utterance is added to it (so nothing is lost), and
the user is told why once, in plain words.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from . import environment
from .clipboard import ClipboardError, CommandClipboard, wayland_clipboard, x11_clipboard
from .x11 import KeyboardError

TERMINALS = {
    "xterm", "uxterm", "urxvt", "rxvt", "konsole", "kitty", "alacritty", "terminator", "tilix",
    "gnome-terminal", "gnome-terminal-server", "org.gnome.terminal", "org.gnome.console", "kgx",
    "org.gnome.ptyxis", "ptyxis", "xfce4-terminal", "lxterminal", "mate-terminal", "qterminal",
    "wezterm", "org.wezfurlong.wezterm", "foot", "footclient", "st", "st-256color", "sakura",
    "terminology", "guake", "tilda", "yakuake", "ghostty", "com.mitchellh.ghostty", "contour",
    "cool-retro-term", "deepin-terminal", "eterm", "zutty", "hyper", "tabby", "blackbox",
    "com.raggesilver.blackbox", "warp", "rio", "wayst", "cosmic-term",
}


def is_terminal(wm_class: tuple[str, str] | None) -> bool:
    if not wm_class:
        return False
    for name in wm_class:
        n = (name or "").lower()
        if n in TERMINALS or n.endswith("terminal") or n.endswith("term"):
            return True
    return False


@dataclass
class DeliveryOptions:
    method: str = "paste"  # "paste" | "type" | "clipboard"
    restore_clipboard: bool = True
    restore_delay_s: float = 0.6  # the target reads the clipboard after the key: wait before restoring
    modifier_timeout_s: float = 3.0  # longest wait for the hotkey's modifiers to be released
    terminal_chord: tuple[str, ...] = ("Control_L", "Shift_L", "v")
    paste_chord: tuple[str, ...] = ("Control_L", "v")


@dataclass
class DeliveryResult:
    delivered: bool  # typed or pasted into the focused window
    on_clipboard: bool  # the text (with any undelivered text before it) is on the clipboard
    how: str  # "Ctrl+V into xterm (XTest)", "clipboard only", ...
    problem: str = ""  # why it was not delivered


def _chord_name(keys: tuple[str, ...]) -> str:
    names = {"Control_L": "Ctrl", "Control_R": "Ctrl", "Shift_L": "Shift", "Shift_R": "Shift", "Alt_L": "Alt"}
    return "+".join(names.get(k, k.upper() if len(k) == 1 else k) for k in keys)


class TextDelivery:
    """``deliver(text)`` from one thread at a time (the sink's worker)."""

    def __init__(
        self,
        options: DeliveryOptions | None = None,
        keyboard=None,
        clipboard: CommandClipboard | None = None,
        keyboard_problem: str = "",
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options or DeliveryOptions()
        self.keyboard = keyboard
        self.clipboard = clipboard
        self.keyboard_problem = keyboard_problem
        self.on_notice = on_notice
        self._told = False
        self._undelivered = ""  # text only on the clipboard, not in any window
        self._saved: str | None = None  # the user's clipboard text before we pasted
        self._ours: str | None = None  # what we last put on the clipboard
        self._restore_timer: threading.Timer | None = None
        self._restore_gen = 0
        self._lock = threading.Lock()

    @classmethod
    def for_desktop(cls, options: DeliveryOptions | None = None, on_notice: Callable[[str], None] | None = None,
                    restore_token: str | None = None, on_token: Callable[[str], None] | None = None) -> TextDelivery:
        """The methods this desktop session offers (X11: XTest or xdotool with xclip or
        xsel; wlroots Wayland: wtype with wl-copy; other Wayland desktops (GNOME, KDE):
        the RemoteDesktop portal with wl-copy, its restore token kept by ``on_token``)."""
        kind = environment.session_type()
        keyboard, problem, clip = None, "", None
        if kind == "x11":
            from .x11 import x11_keyboard

            keyboard, problem = x11_keyboard()
            clip = x11_clipboard()
        elif kind == "wayland":
            from .wayland import WtypeKeyboard

            clip = wayland_clipboard()
            if environment.is_wlroots():
                try:
                    keyboard = WtypeKeyboard()
                except KeyboardError as exc:
                    problem = f"{exc} (sway, Hyprland and other wlroots desktops need it: install wtype)"
            else:
                from .portal_hotkey import PortalUnavailable
                from .portal_keyboard import PortalKeyboard

                try:  # the session opens on the first paste (the desktop asks the user then)
                    keyboard = PortalKeyboard(restore_token=restore_token, on_token=on_token)
                except PortalUnavailable as exc:
                    problem = str(exc)
        else:
            problem = "there is no graphical session (neither DISPLAY nor WAYLAND_DISPLAY is set)"
        if clip is None and kind != "none":
            problem = (problem + "; " if problem else "") + ("no clipboard tool: install xclip or xsel" if kind == "x11" else "no clipboard tool: install wl-clipboard")
        return cls(options, keyboard, clip, problem, on_notice)

    # -- delivery ------------------------------------------------------------------------
    def deliver(self, text: str) -> DeliveryResult:
        if not text:
            return DeliveryResult(True, False, "nothing to deliver")
        with self._lock:
            self._cancel_restore()
            o = self.options
            if o.method != "clipboard" and self.keyboard is not None:
                try:
                    how = self._send(text)
                    self._undelivered = ""
                    return DeliveryResult(True, o.method == "paste", how)
                except (KeyboardError, ClipboardError) as exc:
                    problem = str(exc)
            elif o.method == "clipboard":
                problem = ""
            else:
                problem = self.keyboard_problem or "no way to send keys to other windows"
            return self._keep_on_clipboard(text, problem)

    def _send(self, text: str) -> str:
        o, kb = self.options, self.keyboard
        if not kb.wait_modifiers_released(o.modifier_timeout_s):
            kb.release_modifiers()  # still held after the wait: do not let them reach the paste
        target = kb.focused_class()
        tname = (target[1] or target[0]) if target else "the focused window"
        if o.method == "type":
            kb.type_text(text)
            return f"typed into {tname} ({kb.name})"
        if self.clipboard is None:
            raise ClipboardError(self.keyboard_problem or "no clipboard tool")
        if o.restore_clipboard and self._saved is None:
            current = self.clipboard.read()
            self._saved = current if current != self._ours else None
        self.clipboard.write(text)
        self._ours = text
        chord = o.terminal_chord if is_terminal(target) else o.paste_chord
        kb.chord(chord)
        if o.restore_clipboard and self._saved is not None:
            self._schedule_restore()
        return f"{_chord_name(chord)} into {tname} ({kb.name})"

    def _keep_on_clipboard(self, text: str, problem: str) -> DeliveryResult:
        self._saved = None  # the user needs our text on the clipboard now, not theirs
        self._undelivered += text
        on_clipboard = False
        clip_problem = ""
        if self.clipboard is not None:
            try:
                self.clipboard.write(self._undelivered)
                self._ours = self._undelivered
                on_clipboard = True
            except ClipboardError as exc:
                clip_problem = str(exc)
        else:
            clip_problem = "no clipboard tool is available"
        if problem and not self._told:
            self._told = True
            if on_clipboard:
                msg = (f"Dictated text cannot be pasted into other applications here: {problem}. "
                       "It is on the clipboard instead; press Ctrl+V where you want it. "
                       "Later text will be added to the clipboard too.")
            else:
                msg = (f"Dictated text cannot be pasted into other applications here: {problem}; "
                       f"the clipboard cannot be used either ({clip_problem}). The text is kept in the dictation transcript.")
            if self.on_notice is not None:
                self.on_notice(msg)
        how = "clipboard only" if on_clipboard else "not delivered"
        return DeliveryResult(False, on_clipboard, how, problem or clip_problem)

    # -- clipboard restore ---------------------------------------------------------------
    def _schedule_restore(self) -> None:
        self._restore_gen += 1
        self._restore_timer = threading.Timer(self.options.restore_delay_s, self._restore, (self._restore_gen,))
        self._restore_timer.daemon = True
        self._restore_timer.start()

    def _cancel_restore(self) -> None:
        self._restore_gen += 1  # a timer already waiting for the lock finds itself stale
        if self._restore_timer is not None:
            self._restore_timer.cancel()
            self._restore_timer = None

    def _restore(self, gen: int | None = None) -> None:
        with self._lock:
            if gen is not None and gen != self._restore_gen:
                return
            saved, self._saved = self._saved, None
            if saved is None or self.clipboard is None:
                return
            try:
                if self.clipboard.read() == self._ours:  # the user has not copied anything since
                    self.clipboard.write(saved)
                    self._ours = None
            except ClipboardError:
                pass

    def flush(self) -> None:
        """Restore the clipboard now (end of a session)."""
        timer = self._restore_timer
        if timer is not None:
            timer.cancel()
            self._restore()

    def close(self) -> None:
        self.flush()
        if self.keyboard is not None and hasattr(self.keyboard, "close"):
            self.keyboard.close()

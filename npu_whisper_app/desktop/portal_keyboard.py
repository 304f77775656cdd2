"""Keys on GNOME and KDE Wayland through the XDG RemoteDesktop portal: the one way those
compositors accept keys from an application (wtype's virtual-keyboard protocol is
wlroots-only; uinput events are dropped by GNOME). The desktop asks the user once to
allow it; with ``persist_mode`` 2 the portal returns a restore token that, saved in the
settings, skips the question next time.

Keys are sent as keysyms (``NotifyKeyboardKeysym``), so the layout does not matter and
any character can be typed. Wayland tells no one which window has the focus, so a
terminal cannot be recognised: the paste key is Ctrl+V (Ctrl+Shift+V can be chosen).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence

from .portal_hotkey import PortalUnavailable
from .portal_request import PORTAL_BUS, PORTAL_PATH, PortalMissing, PortalNoAnswer, PortalRefused, portal_request
from .x11 import KeyboardError

RD = "org.freedesktop.portal.RemoteDesktop"
KEYBOARD = 1
_KEYSYMS = {"Control_L": 0xFFE3, "Control_R": 0xFFE4, "Shift_L": 0xFFE1, "Shift_R": 0xFFE2, "Alt_L": 0xFFE9, "Super_L": 0xFFEB,
            "Return": 0xFF0D, "Tab": 0xFF09, "BackSpace": 0xFF08, "Insert": 0xFF63}
_SPECIAL = {"\n": 0xFF0D, "\t": 0xFF09}


def keysym_for(name_or_char: str) -> int:
    if name_or_char in _KEYSYMS:
        return _KEYSYMS[name_or_char]
    if len(name_or_char) == 1:
        ch = name_or_char
        if ch in _SPECIAL:
            return _SPECIAL[ch]
        o = ord(ch)
        return o if 0x20 <= o <= 0xFF else 0x01000000 | o
    raise KeyboardError(f"no keysym for {name_or_char!r}")


class PortalKeyboard:
    name = "RemoteDesktop portal"

    def __init__(self, restore_token: str | None = None, on_token: Callable[[str], None] | None = None, bus: str = "SESSION",
                 timeout_s: float = 120.0, settle_s: float = 0.15) -> None:
        try:
            import jeepney  # noqa: F401
        except ImportError:
            raise PortalUnavailable("jeepney is not installed (pip install jeepney)") from None
        self.restore_token = restore_token
        self.on_token = on_token
        self.bus = bus
        self.timeout_s = timeout_s
        self.settle_s = settle_s
        self.session_handle: str | None = None
        self._conn = None
        self._failed: str | None = None

    # -- session -------------------------------------------------------------------------
    def _request(self, method: str, signature: str, args: tuple, options: dict) -> dict:
        """Call a portal method that answers through a Request object's Response signal."""
        try:
            return portal_request(self._conn, RD, method, signature, args, options, self.timeout_s)
        except PortalMissing as exc:
            raise PortalUnavailable(f"the desktop has no RemoteDesktop portal ({exc})") from None
        except PortalNoAnswer:
            raise KeyboardError("the desktop did not answer (its 'allow remote control' question was not confirmed?)") from None
        except PortalRefused as exc:
            raise KeyboardError("keyboard control was not allowed in the desktop's dialog" if exc.code == 1 else f"{method} failed (code {exc.code})") from None

    def start(self) -> None:
        """Create the session; the desktop may ask the user (once, with a restore token)."""
        from jeepney.io.blocking import open_dbus_connection

        try:
            self._conn = open_dbus_connection(bus=self.bus)
        except Exception as exc:
            raise PortalUnavailable(f"no D-Bus session bus ({exc})") from None
        try:
            r = self._request("CreateSession", "a{sv}", (), {"session_handle_token": ("s", "npuw" + secrets.token_hex(6))})
            self.session_handle = str(r["session_handle"][1])
            select = {"types": ("u", KEYBOARD), "persist_mode": ("u", 2)}
            if self.restore_token:
                select["restore_token"] = ("s", self.restore_token)
            self._request("SelectDevices", "oa{sv}", (self.session_handle,), select)
            r = self._request("Start", "osa{sv}", (self.session_handle, ""), {})
            if not int(r.get("devices", ("u", 0))[1]) & KEYBOARD:
                raise KeyboardError("the desktop did not grant keyboard control")
            token = r.get("restore_token", ("s", ""))[1]
            if token and token != self.restore_token:
                self.restore_token = token
                if self.on_token is not None:
                    self.on_token(token)
        except Exception:
            self.close()
            raise

    def ensure_started(self) -> None:
        """Open the session on first use (the desktop's question comes then); a refusal
        is remembered, not asked again on every utterance."""
        if self._conn is not None:
            return
        if self._failed:
            raise KeyboardError(self._failed)
        try:
            self.start()
        except Exception as exc:
            self._failed = str(exc)
            raise KeyboardError(self._failed) from None

    def _key(self, keysym: int, pressed: bool) -> None:
        from jeepney import DBusAddress, new_method_call

        msg = new_method_call(DBusAddress(PORTAL_PATH, bus_name=PORTAL_BUS, interface=RD), "NotifyKeyboardKeysym", "oa{sv}iu",
                              (self.session_handle, {}, keysym, 1 if pressed else 0))
        reply = self._conn.send_and_get_reply(msg, timeout=5)
        if reply.header.message_type.name == "error":
            raise KeyboardError(f"the RemoteDesktop portal refused a key ({reply.body[0] if reply.body else 'error'})")

    # -- the keyboard interface of delivery.py --------------------------------------------
    def wait_modifiers_released(self, timeout_s: float) -> bool:
        time.sleep(min(timeout_s, self.settle_s))  # Wayland shows no one the keyboard state
        return True

    def release_modifiers(self) -> None:
        pass

    def focused_class(self) -> tuple[str, str] | None:
        return None

    def chord(self, keys: Sequence[str]) -> None:
        self.ensure_started()
        syms = [keysym_for(k) for k in keys]
        for s in syms:
            self._key(s, True)
        for s in reversed(syms):
            self._key(s, False)

    def type_text(self, text: str, delay_s: float = 0.0) -> None:
        self.ensure_started()
        for ch in text:
            s = keysym_for(ch)
            self._key(s, True)
            self._key(s, False)

    def close(self) -> None:
        if self._conn is not None:
            try:
                from jeepney import DBusAddress, new_method_call

                if self.session_handle:
                    self._conn.send(new_method_call(DBusAddress(self.session_handle, bus_name=PORTAL_BUS, interface="org.freedesktop.portal.Session"), "Close"))
            except Exception:
                pass
            self._conn.close()
            self._conn = None

"""The global hotkey through the XDG GlobalShortcuts portal (KDE Plasma 5.27+, GNOME 48+):
the way a Wayland application gets a system-wide key, with press (``Activated``) and
release (``Deactivated``) for push-to-talk. The desktop asks the user once to confirm
or change the key; ours is only a preference (``preferred_trigger``).

D-Bus through jeepney (pure Python, no libdbus build, maintained; the dictation tools'
survey recommends it or dbus-fast). Not present on sway/niri/wlroots desktops: there
:class:`PortalUnavailable` says so and ``npu-whisper dictate --toggle`` bound in the
compositor's config does the job.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable

from .hotkey import HotkeyError, parse_hotkey
from .portal_request import PORTAL_BUS, PortalMissing, PortalNoAnswer, PortalRefused, portal_request

GS = "org.freedesktop.portal.GlobalShortcuts"
SHORTCUT_ID = "dictate"
_TRIGGER_MODS = {"ctrl": "CTRL", "control": "CTRL", "alt": "ALT", "shift": "SHIFT", "super": "LOGO", "win": "LOGO", "meta": "LOGO"}


class PortalUnavailable(HotkeyError):
    pass


def preferred_trigger(spec: str) -> str:
    """``<Ctrl><Alt>d`` -> ``CTRL+ALT+d`` (the XDG shortcuts format)."""
    mods, key = parse_hotkey(spec)
    return "+".join([_TRIGGER_MODS[m] for m in mods] + [key])


class PortalHotkey:
    def __init__(self, spec: str, on_press: Callable[[], None], on_release: Callable[[], None] | None = None, bus: str = "SESSION", timeout_s: float = 60.0) -> None:
        try:
            import jeepney  # noqa: F401
        except ImportError:
            raise PortalUnavailable("jeepney is not installed (pip install jeepney)") from None
        self.spec = spec
        self.trigger = preferred_trigger(spec)
        self.on_press, self.on_release = on_press, on_release
        self.bus = bus
        self.timeout_s = timeout_s  # the user may take a while in the desktop's confirmation dialog
        self.session_handle: str | None = None
        self._conn = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _request(self, method: str, signature: str, args: tuple, options: dict) -> dict:
        """Call a portal method that answers through a Request object's Response signal."""
        try:
            return portal_request(self._conn, GS, method, signature, args, options, self.timeout_s)
        except PortalMissing as exc:
            raise PortalUnavailable(f"the desktop has no GlobalShortcuts portal ({exc})") from None
        except PortalNoAnswer:
            raise HotkeyError(f"the desktop did not answer {method} (the shortcut dialog was not confirmed?)") from None
        except PortalRefused as exc:
            raise HotkeyError("the shortcut was not allowed" if exc.code == 1 else f"{method} failed (code {exc.code})") from None

    def start(self) -> None:
        from jeepney import MatchRule
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        try:
            self._conn = open_dbus_connection(bus=self.bus)
        except Exception as exc:
            raise PortalUnavailable(f"no D-Bus session bus ({exc})") from None
        try:
            results = self._request("CreateSession", "a{sv}", (), {"session_handle_token": ("s", "npuw" + secrets.token_hex(6))})
            self.session_handle = str(results["session_handle"][1])
            shortcut = (SHORTCUT_ID, {"description": ("s", "Start or stop dictation"), "preferred_trigger": ("s", self.trigger)})
            self._request("BindShortcuts", "oa(sa{sv})sa{sv}", (self.session_handle, [shortcut], ""), {})
            for member in ("Activated", "Deactivated"):
                self._conn.send_and_get_reply(message_bus.AddMatch(MatchRule(type="signal", interface=GS, member=member)), timeout=10)
        except Exception:
            self._conn.close()
            self._conn = None
            raise
        self._thread = threading.Thread(target=self._loop, name="dictate-portal-hotkey", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from jeepney import HeaderFields, MatchRule

        rule = MatchRule(type="signal", interface=GS)
        with self._conn.filter(rule, bufsize=64) as queue:
            while not self._stop.is_set():
                try:
                    msg = self._conn.recv_until_filtered(queue, timeout=0.2)
                except TimeoutError:
                    continue
                except Exception:
                    return  # the bus went away
                session, shortcut_id = msg.body[0], msg.body[1]
                if session != self.session_handle or shortcut_id != SHORTCUT_ID:
                    continue
                member = msg.header.fields.get(HeaderFields.member)
                fn = self.on_press if member == "Activated" else self.on_release if member == "Deactivated" else None
                if fn is not None:
                    try:
                        fn()
                    except Exception:
                        pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._conn is not None:
            try:
                from jeepney import DBusAddress, new_method_call

                if self.session_handle:
                    self._conn.send(new_method_call(DBusAddress(self.session_handle, bus_name=PORTAL_BUS, interface="org.freedesktop.portal.Session"), "Close"))
            except Exception:
                pass
            self._conn.close()
            self._conn = None

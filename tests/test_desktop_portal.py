"""The GlobalShortcuts portal hotkey against a stand-in portal on a private D-Bus session
bus (dbus-daemon): the session and binding requests with their Response signals, then
Activated/Deactivated -> press/release. (A real desktop's portal - KDE, GNOME 48+ - was
not available here.)"""

from __future__ import annotations

import subprocess
import threading

import pytest
from desktop_helpers import wait_for

from npu_whisper_app.desktop.portal_hotkey import GS, PortalHotkey, PortalUnavailable, preferred_trigger
from npu_whisper_app.desktop.portal_request import PORTAL_BUS, PORTAL_PATH


@pytest.fixture
def bus():
    proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"], stdout=subprocess.PIPE, text=True)
    address = proc.stdout.readline().strip()
    yield address
    proc.terminate()
    proc.wait(5)


class FakePortal:
    """Answers CreateSession and BindShortcuts as xdg-desktop-portal does."""

    def __init__(self, address: str) -> None:
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        self.conn = open_dbus_connection(bus=address)
        self.conn.send_and_get_reply(message_bus.RequestName(PORTAL_BUS))
        self.calls: list[tuple[str, tuple]] = []
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        from jeepney import DBusAddress, HeaderFields, MessageType, new_method_return, new_signal

        while not self._stop.is_set():
            try:
                msg = self.conn.receive(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:
                return
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            self.calls.append((member, msg.body))
            if member not in ("CreateSession", "BindShortcuts"):
                continue  # Session.Close
            options = msg.body[-1]
            sender = msg.header.fields[HeaderFields.sender].lstrip(":").replace(".", "_")
            request = f"{PORTAL_PATH}/request/{sender}/{options['handle_token'][1]}"
            self.conn.send(new_method_return(msg, "o", (request,)))
            if member == "CreateSession":
                results = {"session_handle": ("o", f"{PORTAL_PATH}/session/{sender}/{options['session_handle_token'][1]}")}
            else:
                results = {"shortcuts": ("a(sa{sv})", [("dictate", {"trigger_description": ("s", "Ctrl+Alt+D")})])}
            self.conn.send(new_signal(DBusAddress(request, interface="org.freedesktop.portal.Request"), "Response", "ua{sv}", (0, results)))

    def emit(self, member: str, session: str, shortcut: str = "dictate") -> None:
        from jeepney import DBusAddress, new_signal

        self.conn.send(new_signal(DBusAddress(PORTAL_PATH, interface=GS), member, "osta{sv}", (session, shortcut, 0, {})))

    def close(self) -> None:
        self._stop.set()


def test_portal_hotkey_binds_and_reports_press_and_release(bus) -> None:
    assert preferred_trigger("<Ctrl><Alt>d") == "CTRL+ALT+d"
    portal = FakePortal(bus)
    calls: list[str] = []
    hk = PortalHotkey("<Ctrl><Alt>d", lambda: calls.append("press"), lambda: calls.append("release"), bus=bus, timeout_s=10)
    hk.start()
    try:
        assert [c[0] for c in portal.calls] == ["CreateSession", "BindShortcuts"]
        session, shortcuts, _parent, _opts = portal.calls[1][1]
        assert session == hk.session_handle and shortcuts[0][0] == "dictate"
        assert shortcuts[0][1]["preferred_trigger"] == ("s", "CTRL+ALT+d")
        portal.emit("Activated", "/other/session")  # another app's shortcut: ignored
        portal.emit("Activated", hk.session_handle)
        portal.emit("Deactivated", hk.session_handle)
        wait_for(lambda: calls == ["press", "release"], 10, "press and release")
        hk.close()
        wait_for(lambda: portal.calls[-1][0] == "Close", 10, "the session closed")
    finally:
        hk.close()
        portal.close()


def test_no_portal_on_the_bus_is_said_plainly(bus) -> None:
    hk = PortalHotkey("<Ctrl><Alt>d", lambda: None, bus=bus, timeout_s=5)
    with pytest.raises(PortalUnavailable, match="no GlobalShortcuts portal"):
        hk.start()


class FakeRemoteDesktop(FakePortal):
    """Answers CreateSession, SelectDevices and Start; records the keysyms sent."""

    def __init__(self, address: str, token: str = "tok-1") -> None:
        self.keys: list[tuple[int, int]] = []
        self.token = token
        super().__init__(address)

    def _serve(self) -> None:
        from jeepney import DBusAddress, HeaderFields, MessageType, new_method_return, new_signal

        while not self._stop.is_set():
            try:
                msg = self.conn.receive(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:
                return
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            self.calls.append((member, msg.body))
            if member == "NotifyKeyboardKeysym":
                self.keys.append((msg.body[2], msg.body[3]))
                self.conn.send(new_method_return(msg))
                continue
            if member not in ("CreateSession", "SelectDevices", "Start"):
                continue
            options = msg.body[-1]
            sender = msg.header.fields[HeaderFields.sender].lstrip(":").replace(".", "_")
            request = f"{PORTAL_PATH}/request/{sender}/{options['handle_token'][1]}"
            self.conn.send(new_method_return(msg, "o", (request,)))
            results = {}
            if member == "CreateSession":
                results = {"session_handle": ("o", f"{PORTAL_PATH}/session/{sender}/{options['session_handle_token'][1]}")}
            elif member == "Start":
                results = {"devices": ("u", 1), "restore_token": ("s", self.token)}
            self.conn.send(new_signal(DBusAddress(request, interface="org.freedesktop.portal.Request"), "Response", "ua{sv}", (0, results)))


def test_remote_desktop_portal_sends_the_paste_chord_and_keeps_the_restore_token(bus) -> None:
    from npu_whisper_app.desktop.delivery import DeliveryOptions, TextDelivery
    from npu_whisper_app.desktop.portal_keyboard import PortalKeyboard

    portal = FakeRemoteDesktop(bus)
    tokens: list[str] = []
    kb = PortalKeyboard(restore_token="old", on_token=tokens.append, bus=bus, timeout_s=10, settle_s=0)
    kb.start()
    try:
        select = [c for c in portal.calls if c[0] == "SelectDevices"][0][1][1]
        assert select["types"] == ("u", 1) and select["restore_token"] == ("s", "old") and select["persist_mode"] == ("u", 2)
        assert tokens == ["tok-1"]  # saved by the caller: no question next time

        class NullClipboard:
            name = "null"
            text = None

            def read(self):
                return self.text

            def write(self, t):
                self.text = t

        d = TextDelivery(DeliveryOptions(restore_clipboard=False), kb, NullClipboard())
        assert d.deliver("hi").delivered
        assert portal.keys == [(0xFFE3, 1), (0x76, 1), (0x76, 0), (0xFFE3, 0)]  # Ctrl down, v, Ctrl up
        portal.keys.clear()
        kb.type_text("é\n")
        assert portal.keys == [(0xE9, 1), (0xE9, 0), (0xFF0D, 1), (0xFF0D, 0)]
    finally:
        kb.close()
        portal.close()


def test_no_remote_desktop_portal_is_said_plainly(bus) -> None:
    from npu_whisper_app.desktop.portal_keyboard import PortalKeyboard

    with pytest.raises(PortalUnavailable, match="no RemoteDesktop portal"):
        PortalKeyboard(bus=bus, timeout_s=5).start()

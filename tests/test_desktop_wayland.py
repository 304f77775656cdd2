"""Text delivery on Wayland: a headless sway (wlroots: the virtual-keyboard protocol
wtype uses) with a Qt text field on the wayland platform; wl-copy + wtype Ctrl+V and
typing put the text there. (GNOME/KDE's RemoteDesktop portal is not covered.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from desktop_helpers import wait_for

from npu_whisper_app.desktop.delivery import DeliveryOptions, TextDelivery
from npu_whisper_app.desktop.wayland import WtypeKeyboard

HERE = Path(__file__).resolve().parent


@pytest.fixture
def sway(tmp_path, monkeypatch):
    """sway with its headless backend; as root it runs as ``nobody`` (sway refuses root)."""
    assert shutil.which("sway") and shutil.which("wtype") and shutil.which("wl-copy"), "scripts/setup.sh test installs sway, wtype, wl-clipboard"
    rt = Path(tempfile.mkdtemp(prefix="npuw-wl-"))  # under /tmp: reachable for nobody
    cfg = rt / "sway.cfg"
    cfg.write_text("output HEADLESS-1 resolution 800x600\nxwayland disable\n")
    cfg.chmod(0o644)
    cmd = ["sway", "-c", str(cfg)]
    if os.getuid() == 0:
        shutil.chown(rt, "nobody")
        cmd = ["runuser", "-u", "nobody", "--", *cmd]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SWAYSOCK")}
    env.update(XDG_RUNTIME_DIR=str(rt), WLR_BACKENDS="headless", WLR_LIBINPUT_NO_DEVICES="1", WLR_RENDERER="pixman", HOME=str(rt))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socks = wait_for(lambda: [p.name for p in rt.glob("wayland-*") if not p.name.endswith(".lock")], 30, "sway's socket")
    ipc = wait_for(lambda: list(rt.glob("sway-ipc.*.sock")), 30, "sway's IPC socket")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(rt))
    monkeypatch.setenv("WAYLAND_DISPLAY", socks[0])
    monkeypatch.setenv("SWAYSOCK", str(ipc[0]))
    yield
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(rt, ignore_errors=True)


@pytest.fixture
def field(sway, tmp_path):
    out = tmp_path / "wl-field.txt"
    env = dict(os.environ, QT_QPA_PLATFORM="wayland")
    proc = subprocess.Popen([sys.executable, str(HERE / "wl_target.py"), str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # mapped and focused by sway
    yield lambda: out.read_text() if out.exists() else ""
    proc.terminate()
    proc.wait(10)


def test_wl_copy_and_wtype_paste_into_a_wayland_client(field) -> None:
    notices: list[str] = []
    d = TextDelivery.for_desktop(DeliveryOptions(restore_delay_s=0.2), on_notice=notices.append)
    assert isinstance(d.keyboard, WtypeKeyboard) and d.clipboard is not None and d.clipboard.name == "wl-copy"
    r = d.deliver("Hello Wayland.")
    assert r.delivered, r
    wait_for(lambda: field() == "Hello Wayland.", 20, "the pasted text")
    t = TextDelivery.for_desktop(DeliveryOptions(method="type"))
    assert t.deliver(" Grüße!").delivered
    try:
        wait_for(lambda: field() == "Hello Wayland. Grüße!", 20, "the typed text")
    except AssertionError:
        raise AssertionError(repr(field())) from None
    d.close()
    assert notices == []


def test_gnome_like_wayland_without_a_portal_keeps_the_text_on_the_clipboard(field, monkeypatch) -> None:
    """A Wayland desktop that is not wlroots (GNOME, KDE) needs the RemoteDesktop portal;
    with none on the bus the text stays on the clipboard (wl-copy) and the user is told once."""
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"], stdout=subprocess.PIPE, text=True)
    try:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.stdout.readline().strip())
        monkeypatch.delenv("SWAYSOCK")
        monkeypatch.setenv("XDG_CURRENT_DESKTOP", "GNOME")
        notices: list[str] = []
        d = TextDelivery.for_desktop(on_notice=notices.append)
        assert type(d.keyboard).__name__ == "PortalKeyboard"
        r1, r2 = d.deliver("First."), d.deliver(" Second.")
        assert not r1.delivered and r1.on_clipboard and not r2.delivered
        assert len(notices) == 1 and "RemoteDesktop portal" in notices[0] and "clipboard" in notices[0]
        out = subprocess.run(["wl-paste", "--no-newline"], capture_output=True, text=True, timeout=10).stdout
        assert out == "First. Second."
        assert field() == ""
    finally:
        bus.terminate()
        bus.wait(5)

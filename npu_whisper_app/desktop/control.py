"""The control channel: ``npu-whisper dictate --toggle|--start|--stop|--status`` talks to
the running dictation service over a Unix socket, so any desktop shortcut (GNOME, KDE,
sway bindings) can drive it, including where no global hotkey API exists.

Why a Unix socket rather than D-Bus: it needs no bus library, works the same on every
desktop and in a plain X session or ssh-forwarded test, and its file permissions (a
folder of mode 0700 under ``$XDG_RUNTIME_DIR``) keep other users out.

Protocol: one line of JSON each way. Request ``{"command": "toggle"}``; reply
``{"ok": true, "state": "listening", "owner": "service"}`` or ``{"ok": false, "error": "..."}``.
``owner`` says who serves dictation: ``service`` (``npu-whisper dictate``) or ``app`` (the
desktop app's Dictation tab); one socket, one of them at a time.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

COMMANDS = ("toggle", "start", "stop", "status", "quit")


OWNERS = {"service": "the dictation service (npu-whisper dictate)", "app": "the npu-whisper app (its Dictation tab)"}


class ControlError(Exception):
    pass


class SocketTaken(ControlError):
    """Another live server answers on the socket; ``owner`` says which (``service`` or ``app``)."""

    def __init__(self, message: str, owner: str) -> None:
        super().__init__(message)
        self.owner = owner


def socket_path(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("NPU_WHISPER_DICTATE_SOCKET"):
        return Path(env["NPU_WHISPER_DICTATE_SOCKET"])
    base = env.get("XDG_RUNTIME_DIR") or os.path.join(tempfile.gettempdir(), f"npu-whisper-{os.getuid()}")
    return Path(base) / "npu-whisper" / "dictate.sock"


class ControlServer:
    """Answers requests with ``handler(command) -> dict`` (run on the server's thread);
    every reply says who serves (``owner``)."""

    def __init__(self, handler: Callable[[str], dict], path: Path | None = None, owner: str = "service") -> None:
        self.handler = handler
        self.path = path or socket_path()
        self.owner = owner
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.exists():
            try:
                reply = request("status", self.path, timeout=1.0)
            except ControlError:
                self.path.unlink()  # left by a service that died
            else:
                owner = reply.get("owner") if reply.get("owner") in OWNERS else "service"
                if owner == "app":
                    message = (f"the npu-whisper app is running and serves dictation (its Dictation tab, the hotkey, "
                               f"`npu-whisper dictate --toggle`) with its own model; use it, or quit it first (socket {self.path})")
                else:
                    message = f"a dictation service is already running (socket {self.path})"
                raise SocketTaken(message, owner)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(self.path))
        os.chmod(self.path, 0o600)
        s.listen(8)
        self._sock = s
        self._thread = threading.Thread(target=self._serve, name="dictate-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5.0)
                try:
                    line = conn.makefile("rb").readline(4096)
                    cmd = json.loads(line.decode("utf-8")).get("command")
                    if cmd not in COMMANDS:
                        reply = {"ok": False, "error": f"unknown command {cmd!r} (known: {', '.join(COMMANDS)})"}
                    else:
                        reply = self.handler(cmd)
                except (ValueError, AttributeError, UnicodeDecodeError) as exc:
                    reply = {"ok": False, "error": f"bad request: {exc}"}
                except Exception as exc:  # the handler failed: tell the client, keep serving
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                if isinstance(reply, dict):
                    reply.setdefault("owner", self.owner)
                try:
                    conn.sendall((json.dumps(reply) + "\n").encode("utf-8"))
                except OSError:
                    pass

    def close(self) -> None:
        self._closing = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def request(command: str, path: Path | None = None, timeout: float = 10.0) -> dict:
    """Send ``command`` to the running service; raises :class:`ControlError` (in plain
    words) when none is running."""
    path = path or socket_path()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
        s.sendall((json.dumps({"command": command}) + "\n").encode("utf-8"))
        line = s.makefile("rb").readline(65536)
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlError("no dictation service is running (start it with: npu-whisper dictate)") from None
    except OSError as exc:
        raise ControlError(f"cannot reach the dictation service at {path}: {exc}") from None
    finally:
        s.close()
    try:
        return json.loads(line.decode("utf-8"))
    except ValueError:
        raise ControlError("the dictation service gave no answer") from None

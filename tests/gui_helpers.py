"""Shared bits for the GUI tests: isolated settings/data/log folders and window set-up."""

from __future__ import annotations

import os
from pathlib import Path

EVAL_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "eval-dev"
JFK = EVAL_DEV / "jfk.flac"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def short_socket_path(root: Path) -> str:
    import hashlib
    import tempfile

    return str(Path(tempfile.gettempdir()) / f"npuw-{hashlib.sha1(str(root).encode()).hexdigest()[:12]}.sock")


def isolate(root: Path) -> dict[str, str]:
    """Point settings, data and logs at ``root`` (returns the env changes made)."""
    env = {
        "NPU_WHISPER_SETTINGS": str(root / "settings.ini"),
        "NPU_WHISPER_DATA_DIR": str(root / "data"),
        "NPU_WHISPER_LOG_DIR": str(root / "logs"),
        # the app serves `npu-whisper dictate --toggle` on this socket (dictate.json follows the
        # settings); a short path: a Unix socket's may not pass 107 bytes
        "NPU_WHISPER_DICTATE_SOCKET": short_socket_path(root),
    }
    os.environ.update(env)
    return env


def set_choices(model: str = "tiny.en", device: str = "auto") -> None:
    """Write start-up choices into the isolated settings before a window opens."""
    from npu_whisper_app.gui.settings import Settings

    s = Settings()
    c = s.load()
    c.model, c.device = model, device
    s.save(c)
    del s


def close_window(window) -> None:
    window.close()
    window.deleteLater()

"""Where the app keeps recordings, logs and settings (platformdirs; env overrides for tests)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from platformdirs import user_data_dir, user_log_dir

APP_NAME = "npu-whisper"
ENV_DATA_DIR = "NPU_WHISPER_DATA_DIR"
ENV_LOG_DIR = "NPU_WHISPER_LOG_DIR"
ENV_SETTINGS = "NPU_WHISPER_SETTINGS"  # an .ini file path: isolates settings (tests)


def data_dir() -> Path:
    return Path(os.environ.get(ENV_DATA_DIR) or user_data_dir(APP_NAME))


def recordings_dir() -> Path:
    path = data_dir() / "recordings"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_recording_path() -> Path:
    """A fresh, timestamped WAV path in the recordings folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = recordings_dir() / f"recording-{stamp}.wav"
    path, n = base, 1
    while path.exists():
        path = base.with_name(f"recording-{stamp}-{n}.wav")
        n += 1
    return path


def log_dir() -> Path:
    path = Path(os.environ.get(ENV_LOG_DIR) or user_log_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_file() -> Path:
    return log_dir() / "npu-whisper.log"


def settings_file() -> str | None:
    return os.environ.get(ENV_SETTINGS) or None

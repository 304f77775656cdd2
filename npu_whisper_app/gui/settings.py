"""The user's choices, remembered between runs (QSettings)."""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QByteArray, QSettings

from .paths import APP_NAME, settings_file

MAX_RECENT = 10


def open_qsettings() -> QSettings:
    """The app's QSettings: an .ini file named by $NPU_WHISPER_SETTINGS, else the platform's."""
    path = settings_file()
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, APP_NAME, APP_NAME)


def _bool(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes")


@dataclass
class Choices:
    """What a transcription job uses. ``language`` None = detect."""

    model: str = "base"
    device: str = "auto"
    language: str | None = None
    task: str = "transcribe"
    word_timestamps: bool = False
    short_window: bool = False
    sequential: bool = False  # openai-whisper's loop (--batched False) instead of the batched mode
    input_device: str | None = None  # microphone name; None = the default input
    recent_files: list[str] = field(default_factory=list)


class Settings:
    """Typed access to QSettings."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings or open_qsettings()

    def load(self) -> Choices:
        q = self.q
        c = Choices()
        c.model = str(q.value("job/model", c.model) or c.model)
        c.device = str(q.value("job/device", c.device) or c.device)
        c.language = q.value("job/language", "") or None
        c.task = str(q.value("job/task", c.task) or c.task)
        c.word_timestamps = _bool(q.value("job/word_timestamps"), False)
        c.short_window = _bool(q.value("job/short_window"), False)
        c.sequential = _bool(q.value("job/sequential"), False)
        c.input_device = q.value("record/input_device", "") or None
        recent = q.value("files/recent", [])
        if isinstance(recent, str):
            recent = [recent]
        c.recent_files = [str(r) for r in (recent or [])][:MAX_RECENT]
        return c

    def save(self, c: Choices) -> None:
        q = self.q
        q.setValue("job/model", c.model)
        q.setValue("job/device", c.device)
        q.setValue("job/language", c.language or "")
        q.setValue("job/task", c.task)
        q.setValue("job/word_timestamps", c.word_timestamps)
        q.setValue("job/short_window", c.short_window)
        q.setValue("job/sequential", c.sequential)
        q.setValue("record/input_device", c.input_device or "")
        q.setValue("files/recent", list(c.recent_files[:MAX_RECENT]))
        q.sync()

    def geometry(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.q.value("window/geometry"), self.q.value("window/state")

    def save_geometry(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)
        self.q.sync()


def add_recent(recent: list[str], path: str) -> list[str]:
    """``path`` first, no duplicates, at most MAX_RECENT."""
    return ([path] + [p for p in recent if p != path])[:MAX_RECENT]

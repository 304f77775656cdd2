"""The dictation service's settings, kept as JSON beside the app's other settings.

Qt-free (the service, the CLI and the app's Dictation tab read and write them; one file
for all three): ``dictate.json`` in the folder
of ``$NPU_WHISPER_SETTINGS`` when that is set (tests), else in the user config folder
(platformdirs). ``$NPU_WHISPER_DICTATE_SETTINGS`` names the file itself. A file that
cannot be read is set aside (``.bad``) with a message, never silently overwritten.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class DictateSettings:
    model: str = "base"
    device: str = "auto"
    language: str | None = None
    input_device: str | None = None
    hotkey: str = "<Ctrl><Alt>d"  # X11 grab; on Wayland bind `npu-whisper dictate --toggle` instead
    mode: str = "toggle"  # "toggle" | "push-to-talk"
    method: str = "paste"  # "paste" | "type" | "clipboard" | "off" (only in the app's Dictation tab)
    restore_clipboard: bool = True
    vocabulary: list[str] = field(default_factory=list)  # names, jargon: given to Whisper as its prompt
    spoken_commands: bool = False  # "new line", "period", "comma" -> text
    sounds: bool = False  # start/stop sounds (never transcribed)
    auto_stop_s: float = 0.0  # stop after this long without speech; 0: never
    silence_ms: int = 500
    # "window" (default here): the partials' fitted window with the previous text as prompt,
    # about half the decode of "transcribe" (the file's exact words; 30 s window), the same
    # WER on eval-dev (0.093); the service's latency target needs it (README)
    final: str = "window"
    # partial text while speaking: nothing in the service shows it yet, and on 2 cores a
    # partial decode competes with the final's (see README, "Dictation into any application")
    partials: bool = False
    # GNOME/KDE Wayland: the RemoteDesktop portal's token, so the desktop asks only once
    remote_desktop_token: str = ""


def settings_path() -> Path:
    if os.environ.get("NPU_WHISPER_DICTATE_SETTINGS"):
        return Path(os.environ["NPU_WHISPER_DICTATE_SETTINGS"])
    if os.environ.get("NPU_WHISPER_SETTINGS"):
        return Path(os.environ["NPU_WHISPER_SETTINGS"]).with_name("dictate.json")
    from platformdirs import user_config_dir

    return Path(user_config_dir("npu-whisper")) / "dictate.json"


def load_settings(path: Path | None = None, on_problem=None) -> DictateSettings:
    """The saved settings; defaults for what is missing. ``on_problem(message)`` hears
    about a file that could not be used."""
    path = path or settings_path()
    if not path.exists():
        return DictateSettings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        bad = path.with_suffix(".json.bad")
        try:
            path.replace(bad)
            where = f"it was kept as {bad}"
        except OSError:
            where = "it was left as it is"
        if on_problem:
            on_problem(f"the dictation settings {path} could not be read ({exc}); using the defaults, {where}")
        return DictateSettings()
    known = {f.name for f in fields(DictateSettings)}
    s = DictateSettings(**{k: v for k, v in data.items() if k in known})
    unknown = sorted(set(data) - known)
    if unknown and on_problem:
        on_problem(f"ignored unknown dictation settings in {path}: {', '.join(unknown)}")
    if isinstance(s.vocabulary, str):
        s.vocabulary = [w.strip() for w in s.vocabulary.split(",") if w.strip()]
    return s


def save_settings(s: DictateSettings, path: Path | None = None) -> Path:
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(s), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def update_settings(path: Path | None = None, on_problem=None, **changes) -> DictateSettings:
    """Save ``changes`` (field=value) into the file, keeping every other saved field as
    it is there (another program may have saved them meanwhile); returns the result."""
    known = {f.name for f in fields(DictateSettings)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"unknown dictation settings: {', '.join(unknown)}")
    s = load_settings(path, on_problem)
    for k, v in changes.items():
        setattr(s, k, v)
    save_settings(s, path)
    return s

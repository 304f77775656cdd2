"""A virtual microphone through the real PortAudio/ALSA stack: ALSA's ``file`` plugin
plays a raw 16 kHz mono recording as the default capture device (no sound card needed).

ALSA reads ``~/.asoundrc`` when PortAudio initialises, so :func:`use_virtual_mic`
points HOME at a folder with one and re-initialises PortAudio.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ASOUNDRC = """
pcm.!default {{
    type asym
    capture.pcm "npuwhisper_mic"
    playback.pcm "null"
}}
pcm.npuwhisper_mic {{
    type plug
    slave {{ pcm "npuwhisper_micfile"; format S16_LE; rate 16000; channels 1 }}
}}
pcm.npuwhisper_micfile {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
"""


def use_virtual_mic(home: Path, audio: np.ndarray, monkeypatch) -> Path:
    """Make ``audio`` (16 kHz float32) the default capture device; returns the raw file.

    The plugin delivers the recording faster than real time, then silence.
    """
    home.mkdir(parents=True, exist_ok=True)
    raw = home / "mic.raw"
    np.clip(np.round(audio * 32768), -32768, 32767).astype("<i2").tofile(raw)
    (home / ".asoundrc").write_text(ASOUNDRC.format(raw=raw))
    monkeypatch.setenv("HOME", str(home))
    import sounddevice as sd

    sd._terminate()
    sd._initialize()
    return raw


def reset_portaudio() -> None:
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


def has_portaudio() -> bool:
    try:
        import sounddevice  # noqa: F401
    except OSError:
        return False
    return True


__all__ = ["use_virtual_mic", "reset_portaudio", "has_portaudio", "os"]

"""Start and stop sounds, played so that they are never transcribed: the start sound
ends before the microphone is opened, the stop sound starts after it is closed."""

from __future__ import annotations

import numpy as np

RATE = 48000


def tone(freqs: tuple[float, ...], seconds: float = 0.09, volume: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)
    parts = [np.sin(2 * np.pi * f * t) * fade * volume for f in freqs]
    return np.concatenate(parts).astype(np.float32)


START = (660.0, 880.0)
STOP = (880.0, 660.0)


def play(freqs: tuple[float, ...], device=None) -> str | None:
    """Play and wait until done; returns why it could not, or None."""
    try:
        import sounddevice as sd

        sd.play(tone(freqs), RATE, device=device, blocking=True)
    except Exception as exc:  # no output device, PortAudio missing
        return f"cannot play the start/stop sound ({type(exc).__name__}: {exc})"
    return None

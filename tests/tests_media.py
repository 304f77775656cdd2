"""Longer test recordings made from short ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from media import write_wav


def write_long(audio: np.ndarray, path: Path, seconds: float, sr: int = 16000) -> Path:
    """``audio`` repeated (with 0.5 s gaps) to ``seconds`` long, as a WAV."""
    gap = np.zeros(sr // 2, np.float32)
    unit = np.concatenate([audio, gap])
    reps = int(np.ceil(seconds * sr / len(unit)))
    return write_wav(path, np.tile(unit, reps)[: int(seconds * sr)])

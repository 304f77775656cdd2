"""Decode any common audio or video file to 16 kHz mono float32 with PyAV.

PyAV ships FFmpeg inside its wheels, so no ``ffmpeg`` program is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import SAMPLE_RATE


class AudioError(Exception):
    """A file could not be turned into audio; the message names the file and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Return the first audio stream of ``path`` as mono float32 at ``sample_rate``.

    Raises :class:`AudioError` for a missing, empty, truncated or non-audio file.
    """
    import av  # imported here: decoding is the only user

    p = Path(path)
    container = _open(p)
    chunks: list[np.ndarray] = []
    try:
        if not container.streams.audio:
            raise AudioError(p, "contains no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError) as exc:
            if not chunks:
                raise AudioError(p, f"cannot decode audio ({_short(exc)})") from None
            # a truncated tail: keep what decoded, like ffmpeg does
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    finally:
        container.close()
    if not chunks:
        raise AudioError(p, "no audio samples could be decoded (empty or truncated)")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    if audio.size == 0:
        raise AudioError(p, "no audio samples could be decoded (empty or truncated)")
    return audio


def _open(p: Path):  # -> av container
    """``p`` opened with PyAV, or :class:`AudioError` saying why it can't be."""
    import av

    if not p.exists():
        raise AudioError(p, "file not found")
    if p.is_dir():
        raise AudioError(p, "is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(p, "file is empty")
    try:
        return av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioError(p, f"not a readable audio/video file ({_short(exc)})") from None
    except OSError as exc:
        raise AudioError(p, f"cannot open ({exc.strerror or exc})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def duration_seconds(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    return float(len(audio)) / sample_rate


def audio_duration(path: str | Path) -> float:
    """Seconds of audio in ``path`` from its container's header (nothing decoded), checked
    as :func:`load_audio` checks a file; 0.0 where the container does not say.

    Raises :class:`AudioError` for a missing, empty or non-audio file."""
    p = Path(path)
    container = _open(p)
    try:
        if not container.streams.audio:
            raise AudioError(p, "contains no audio stream")
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration) / 1e6 if container.duration else 0.0
    finally:
        container.close()

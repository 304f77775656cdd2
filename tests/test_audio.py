"""Decoding real media to 16 kHz mono float32, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media import encode, write_wav

from npu_whisper_app.audio.decode import AudioError, load_audio

SR = 16000


@pytest.fixture(scope="module")
def tone() -> np.ndarray:
    t = np.arange(2 * SR) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize(
    "name,codec,video",
    [
        ("a.flac", "flac", False),
        ("a.ogg", "libopus", False),
        ("a.opus", "libopus", False),
        ("a.mp3", "libmp3lame", False),
        ("a.m4a", "aac", False),
        ("a.mp4", "aac", True),
        ("a.mkv", "flac", True),
    ],
)
def test_decodes_common_formats(tmp_path: Path, tone: np.ndarray, name: str, codec: str, video: bool) -> None:
    path = encode(tone, tmp_path / name, codec, with_video=video)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / SR - 2.0) < 0.1
    # the 440 Hz tone survives: its spectral peak is where it should be
    spec = np.abs(np.fft.rfft(audio[SR // 2 : SR // 2 + SR]))
    assert abs(np.argmax(spec) - 440) <= 2


def test_wav_is_exact_and_resampled(tmp_path: Path, tone: np.ndarray) -> None:
    path = write_wav(tmp_path / "a.wav", tone)
    audio = load_audio(path)
    assert np.max(np.abs(audio - tone)) < 1e-3
    p44 = write_wav(tmp_path / "b.wav", np.interp(np.arange(2 * 44100) / 44100, np.arange(2 * SR) / SR, tone).astype(np.float32), sr=44100)
    assert abs(len(load_audio(p44)) - 2 * SR) < 50


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    import wave

    t = np.arange(SR) / SR
    left = 0.5 * np.sin(2 * np.pi * 300 * t)
    stereo = np.stack([left, -left], 1)  # opposite phase: the mono mix cancels out
    path = tmp_path / "st.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((stereo * 32767).astype("<i2").tobytes())
    assert np.max(np.abs(load_audio(path))) < 1e-3


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda d: d / "missing.wav", "file not found"),
        (lambda d: _write(d / "empty.wav", b""), "file is empty"),
        (lambda d: _write(d / "text.mp3", b"this is not audio at all\n" * 50), "not a readable audio"),
        (lambda d: d, "is a directory"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert reason in message and str(path) in message and "\n" not in message


def test_truncated_file(tmp_path: Path, tone: np.ndarray) -> None:
    good = encode(tone, tmp_path / "good.flac", "flac")
    data = good.read_bytes()
    head_only = _write(tmp_path / "head.flac", data[:60])
    with pytest.raises(AudioError):
        load_audio(head_only)
    half = _write(tmp_path / "half.flac", data[: len(data) // 2])
    audio = load_audio(half)  # what decodes is kept, like ffmpeg does
    assert 0.3 * SR < len(audio) < 1.9 * SR


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path

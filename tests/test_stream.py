"""Streaming audio and log-mel (audio/stream.py) against openai-whisper's whole-file log-mel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import whisper
from media import EVAL_DEV, encode, write_wav

from npu_whisper_app.audio.decode import AudioError, load_audio
from npu_whisper_app.audio.stream import iter_blocks, mel_source_for_array, mel_source_for_file, scan
from npu_whisper_app.jobs import MelSource


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """~50 s of real speech with pauses (jfk, cards, goforward) plus a short tail."""
    parts = [load_audio(EVAL_DEV / "jfk.flac"), np.zeros(8000, np.float32)]
    for name in ("cards/001.wav", "goforward.wav"):
        parts += [load_audio(EVAL_DEV / name), np.zeros(4000, np.float32)]
    a = np.concatenate(parts * 2)
    return np.concatenate([a, a[:1234]])  # a length that is no multiple of the hop


def _reference(audio: np.ndarray) -> np.ndarray:
    return whisper.log_mel_spectrogram(audio, padding=whisper.audio.N_SAMPLES).numpy()


def _check(src: MelSource, ref: np.ndarray, spans: list[tuple[int, int]]) -> None:
    content = ref.shape[-1] - whisper.audio.N_FRAMES
    assert src.n_frames == content
    for start, end in spans:
        got = src.frames(start, end)
        assert got.shape == (80, end - start) and got.dtype == np.float32
        inside = max(0, min(end, content) - start)
        if inside:
            assert np.abs(got[:, :inside] - ref[:, start : start + inside]).max() <= 1e-4
        assert not got[:, inside:].any()  # zero past the audio, as transcribe pads


def test_array_source_equals_whisper_log_mel(speech: np.ndarray) -> None:
    ref = _reference(speech)
    src = mel_source_for_array(speech)
    n = src.n_frames
    _check(src, ref, [(0, 3000), (0, 1), (1, 2), (777, 3777), (n - 5, n + 3000), (n + 10, n + 20)])


def test_file_source_streams_and_equals(speech: np.ndarray, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "speech.wav", speech)
    audio = load_audio(path)  # int16-rounded samples, what the file holds
    ref = _reference(audio)
    # small decode blocks: every window crosses block edges
    src, found = mel_source_for_file(path, block_samples=7919)
    assert found.n_samples == audio.size
    n = src.n_frames
    _check(src, ref, [(0, 3000), (2500, 5500), (n - 100, n + 2900)])
    # only what the last window can need is kept
    assert src.samples._buf.size < 3000 * 160 + 2 * 7919
    assert src.samples.restarts == 0
    _check(src, ref, [(100, 400)])  # going back decodes again from the start
    assert src.samples.restarts == 1


def test_global_max_is_the_whole_recordings(speech: np.ndarray, tmp_path: Path) -> None:
    """A loud burst late in the file changes the clamp of the first window, as in Whisper."""
    loud = speech.copy()
    loud[-20000:-19000] = np.sin(np.arange(1000) * 0.3).astype(np.float32) * 0.99
    src, _ = mel_source_for_file(write_wav(tmp_path / "loud.wav", loud), block_samples=16000)
    ref = _reference(load_audio(tmp_path / "loud.wav"))
    _check(src, ref, [(0, 3000)])
    quiet = mel_source_for_array(speech)
    assert src.log_max > quiet.log_max


def test_tiny_and_silent_audio() -> None:
    for audio in (np.zeros(16000, np.float32), np.full(100, 0.1, np.float32), np.zeros(300, np.float32)):
        ref = _reference(audio)
        src = mel_source_for_array(audio)
        _check(src, ref, [(0, 3000)])


def test_compressed_file_blocks(tmp_path: Path, speech: np.ndarray) -> None:
    path = encode(speech[:160000], tmp_path / "s.flac", "flac", rate=16000)
    blocks = list(iter_blocks(path, 20000))
    assert all(b.size == 20000 for b in blocks[:-1]) and 0 < blocks[-1].size <= 20000
    whole = load_audio(path)
    assert np.array_equal(np.concatenate(blocks), whole)
    assert scan(iter(blocks)).n_samples == whole.size
    with pytest.raises(AudioError):
        list(iter_blocks(tmp_path / "missing.wav"))
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    with pytest.raises(AudioError):
        list(iter_blocks(tmp_path / "junk.wav"))

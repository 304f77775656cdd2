"""Microphone capture through real PortAudio (ALSA file plugin as the device) and the WAV writer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from media import espeak
from virtual_mic import reset_portaudio, use_virtual_mic

from npu_whisper_app.audio.capture import Microphone, MicrophoneError, list_input_devices
from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.audio.wavwriter import WavWriter


@pytest.fixture
def speech(tmp_path: Path) -> np.ndarray:
    return load_audio(espeak("testing the microphone", tmp_path / "s.wav"))


def test_records_virtual_mic_to_wav(tmp_path: Path, monkeypatch) -> None:
    """A ramp played as the microphone arrives in order, resampled, saved and metered."""
    ramp = (np.arange(48000) % 30000).astype(np.float32) / 32768
    use_virtual_mic(tmp_path / "home", ramp, monkeypatch)
    try:
        assert any(d.is_default for d in list_input_devices())
        blocks: list[np.ndarray] = []
        mic = Microphone(None, on_block=blocks.append, wav_path=tmp_path / "rec.wav")
        mic.start()
        deadline = time.monotonic() + 20
        while mic.seconds < 4.0 and time.monotonic() < deadline:
            time.sleep(0.002)
        path = mic.stop()
    finally:
        reset_portaudio()
    got = np.concatenate(blocks)
    saved = load_audio(path)
    assert len(saved) == len(got) >= 48000
    assert np.max(np.abs(saved - got)) < 1e-4
    steps = np.round(np.diff(got[:40000]) * 32768)
    # every sample arrives, in order (the ramp wraps once at 30000)
    assert np.sum(steps != 1) == 1
    assert mic.level_dbfs > -120


def test_unknown_device_is_a_clear_error() -> None:
    with pytest.raises(MicrophoneError, match="no such input device"):
        Microphone(device=9999).start()


def test_consumer_failure_keeps_recording(tmp_path: Path, speech: np.ndarray, monkeypatch) -> None:
    use_virtual_mic(tmp_path / "home", speech, monkeypatch)
    errors: list[str] = []

    def broken(block: np.ndarray) -> None:
        raise RuntimeError("decoder crashed")

    try:
        mic = Microphone(None, on_block=broken, wav_path=tmp_path / "rec.wav", on_error=errors.append)
        mic.start()
        deadline = time.monotonic() + 20
        while mic.seconds < 1.0 and time.monotonic() < deadline:
            time.sleep(0.002)
        path = mic.stop()
    finally:
        reset_portaudio()
    assert errors and "decoder crashed" in errors[0]
    assert len(load_audio(path)) >= 16000


def test_wav_is_readable_before_close(tmp_path: Path) -> None:
    """A crash after a flush leaves a valid file with everything flushed."""
    w = WavWriter(tmp_path / "live.wav", flush_every_s=0.1)
    tone = 0.2 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    w.write(tone)
    w.write(tone)  # passes the flush threshold
    copy = tmp_path / "copy.wav"
    copy.write_bytes((tmp_path / "live.wav").read_bytes())  # as if the process died here
    assert len(load_audio(copy)) == 32000
    w.close()

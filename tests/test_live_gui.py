"""The dictation widget standalone on a real X display (Xvfb, xcb) with the virtual
microphone (ALSA file plugin through PortAudio) and Whisper tiny.en."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from media import EVAL_DEV
from virtual_mic import reset_portaudio, use_virtual_mic

from npu_whisper_app.audio.decode import load_audio

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X display (run under xvfb-run)")

SR = 16000


@pytest.fixture(scope="session")
def qapp_args():
    return ["npu-whisper-test", "-platform", "xcb"]


@pytest.fixture(scope="module")
def tiny_engine():
    from npu_whisper_app.pipeline import Engine

    engine = Engine("tiny.en", "cpu")
    yield engine
    engine.close()


def test_dictation_widget_with_virtual_mic(qtbot, tmp_path: Path, monkeypatch, tiny_engine) -> None:
    from PySide6.QtGui import QGuiApplication

    from npu_whisper_app.gui.dictation import DictationWidget

    assert QGuiApplication.platformName() == "xcb"
    gap = np.zeros(SR, np.float32)
    speech = np.concatenate([gap, load_audio(EVAL_DEV / "goforward.wav"), gap, load_audio(EVAL_DEV / "forever.wav"), gap])
    use_virtual_mic(tmp_path / "home", speech, monkeypatch)
    # the dictation settings of this test alone; the text stays in the widget (the
    # clipboard is auto-copy's here), delivery into other applications: test_desktop_app.py
    monkeypatch.setenv("NPU_WHISPER_DICTATE_SETTINGS", str(tmp_path / "dictate.json"))
    from npu_whisper_app.desktop.settings import DictateSettings, save_settings

    save_settings(DictateSettings(method="off"))
    try:
        from npu_whisper_app.live.dictation import DictationOptions

        # the file device delivers far faster than real time, then silence without end: a
        # 10-minute ring keeps the speech readable however slowly the VAD thread is served
        w = DictationWidget(engine_provider=lambda: tiny_engine, wav_dir=tmp_path / "rec", options=DictationOptions(ring_seconds=600))
        qtbot.addWidget(w)
        w.resize(700, 400)
        w.show()
        qtbot.waitExposed(w)
        assert w.device_combo.count() >= 2  # system default + the virtual device
        partials: list[str] = []
        levels: list[float] = []
        w.worker.partial.connect(lambda i, s, t: partials.append(s))
        w.worker.level.connect(levels.append)
        w.auto_copy.setChecked(True)
        assert w.exact_words.isChecked()  # the file's words by default
        w.exact_words.setChecked(False)  # the faster final: must reach the decoder
        qtbot.mouseClick(w.start_button, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.MouseButton.LeftButton)
        assert w.running
        # the file device delivers faster than real time: both utterances end quickly
        try:
            qtbot.waitUntil(lambda: len(w.finals) >= 2, timeout=60000)
        except Exception as exc:  # say what the widget said (a device or decoder notice)
            raise AssertionError(f"finals {w.finals!r}; status {w.status.text()!r}; errors {w.errors!r}") from exc
        w.stop()
        qtbot.waitUntil(lambda: not w.running, timeout=60000)
    finally:
        reset_portaudio()
    assert "Recording saved" in w.status.text()
    assert max(levels) > -40  # the meter saw the speech
    text = w.all_text().lower()
    # the file device may drop a 50 ms period on overflow, so a word can come out bent
    assert "meters" in text and "forever" in text
    assert QGuiApplication.clipboard().text() == w.finals[-1]  # auto-copy
    assert w.worker._decoder.options.final == "window"  # "Exact words" off reached the decoder
    w.copy_all()
    assert QGuiApplication.clipboard().text() == w.all_text()
    assert w.wav_path and Path(w.wav_path).exists() and len(load_audio(w.wav_path)) >= len(speech) * 0.8
    w.shutdown()

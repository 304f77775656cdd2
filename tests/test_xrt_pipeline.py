"""The whole app path on the xrt device through the pyxrt stand-in: real weights, real speech."""

from __future__ import annotations

from pathlib import Path

import pytest

from media import EVAL_DEV, espeak
from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.cli import main
from npu_whisper_app.pipeline import Engine, TranscribeOptions
from standin.support import install

TINY = (80, 1500, 384, 6)  # tiny.en: n_mels, n_ctx, d, heads
GREEDY = TranscribeOptions(language="en", temperature=(0.0,))


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    if (EVAL_DEV / "goforward.wav").exists():
        return EVAL_DEV / "goforward.wav"
    return espeak("go forward ten meters", tmp_path_factory.mktemp("x") / "go.wav")


@pytest.fixture(scope="module")
def cpu_text(speech: Path) -> str:
    return Engine("tiny.en", "cpu").transcribe(load_audio(speech), GREEDY).text


def test_transcribes_on_xrt_with_the_same_words_as_cpu(monkeypatch, tmp_path, speech, cpu_text) -> None:
    pyxrt = install(monkeypatch, tmp_path, TINY)
    engine = Engine("tiny.en", "xrt")
    result = engine.transcribe(load_audio(speech), GREEDY)
    assert result.device == "xrt" and not result.notices
    assert result.text == cpu_text
    assert pyxrt.stats.runs_by_kind["attention"] == 4 * 6 * 24  # layers x heads x query tiles
    assert {e.device for e in result.events} >= {"xrt"}


def test_auto_picks_xrt_when_it_works(monkeypatch, tmp_path, capsys) -> None:
    install(monkeypatch, tmp_path, TINY)
    assert main(["devices"]) == 0
    assert "auto -> xrt" in capsys.readouterr().out


@pytest.mark.parametrize("how", ["no device", "kernels missing", "kernel crash"])
def test_failures_finish_the_job_on_cpu_and_say_so(monkeypatch, tmp_path, speech, cpu_text, how: str) -> None:
    pyxrt = install(monkeypatch, tmp_path, TINY)
    if how == "no device":
        pyxrt.DEVICES = 0
    elif how == "kernels missing":
        monkeypatch.setenv("NPU_WHISPER_KERNELS", str(tmp_path / "nothing-built"))
    else:
        pyxrt.fail("attention", at=30, state="ERT_CMD_STATE_ERROR")
    told: list[str] = []
    engine = Engine("tiny.en", "xrt", on_notice=told.append)
    result = engine.transcribe(load_audio(speech), GREEDY)
    assert result.text == cpu_text
    assert engine.device_name == "cpu"
    assert told and "'cpu'" in told[0]
    if how == "kernel crash":
        assert "ERT_CMD_STATE_ERROR" in told[0]
        assert {e.device for e in result.events} >= {"xrt", "cpu"}


def test_cli_reports_the_fallback(monkeypatch, tmp_path, speech, capsys) -> None:
    pyxrt = install(monkeypatch, tmp_path, TINY)
    pyxrt.DEVICES = 0
    assert main(["transcribe", str(speech), "--model", "tiny.en", "--device", "xrt"]) == 0
    captured = capsys.readouterr()
    assert "note: device 'xrt' could not start" in captured.err
    assert captured.out.strip()

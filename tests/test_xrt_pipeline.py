"""The whole app path on the xrt device through the pyxrt stand-in: real weights, real speech."""

from __future__ import annotations

from pathlib import Path

import pytest
from media import EVAL_DEV
from standin.support import install

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.cli import main
from npu_whisper_app.pipeline import Engine, TranscribeOptions

TINY = (80, 1500, 384, 6)  # tiny.en: n_mels, n_ctx, d, heads
GREEDY = TranscribeOptions(language="en", temperature=(0.0,))
JFK = EVAL_DEV / "jfk.flac"  # 11 s: one window


@pytest.fixture(scope="module")
def speech() -> Path:
    assert JFK.is_file(), f"eval-dev recording missing: {JFK}"
    return JFK


@pytest.fixture(scope="module")
def cpu_text(speech: Path) -> str:
    return Engine("tiny.en", "cpu").transcribe(load_audio(speech), GREEDY).text


def test_transcribes_real_speech_on_xrt_with_the_same_words_as_cpu(monkeypatch, tmp_path, speech, cpu_text) -> None:
    pyxrt = install(monkeypatch, tmp_path, TINY)
    engine = Engine("tiny.en", "xrt")
    result = engine.transcribe(load_audio(speech), GREEDY)
    assert result.device == "xrt" and not result.notices
    assert "ask not what your country can do for you" in cpu_text.lower()
    assert result.text == cpu_text
    windows = {e.window for e in result.events if e.device == "xrt"}
    assert len(windows) == 1
    runs = sum(pyxrt.stats.runs.values())
    assert runs == 2 + 4 * 7 + 1 <= 64  # per window: conv1, conv2, 7 per layer, ln_post
    assert pyxrt.stats.runs_by_kind["attention"] == 4  # one per layer
    assert pyxrt.stats.contexts_peak <= 3 and pyxrt.stats.contexts_refused == 0
    assert pyxrt.stats.placements == [(1, 4)] * 3  # admitted by the driver's rule, one shared partition
    attn = [e for e in result.events if e.op == "attention"]
    assert {(e.layer, e.head, e.tile) for e in attn} == {(layer, h, t) for layer in range(4) for h in range(6) for t in range(24)}
    assert all(e.device == "xrt" and e.core is not None and e.duration_ns > 0 for e in attn)
    assert {e.core for e in attn} == {(c, r) for c in range(4) for r in range(2, 6)}  # all 16 cores


def test_auto_picks_xrt_when_it_works(monkeypatch, tmp_path, capsys) -> None:
    install(monkeypatch, tmp_path, TINY)
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "auto -> xrt" in out
    assert "generation: npu1" in out and "kernels_built_for: ['npu1']" in out and "aie_clock_mhz: 1600" in out


@pytest.mark.parametrize("how", ["no device", "kernels missing", "context refused", "kernel error", "timeout"])
def test_failures_finish_the_job_on_cpu_and_say_so(monkeypatch, tmp_path, speech, cpu_text, how: str) -> None:
    pyxrt = install(monkeypatch, tmp_path, TINY)
    options = {}
    if how == "no device":
        pyxrt.DEVICES = 0
    elif how == "kernels missing":
        monkeypatch.setenv("NPU_WHISPER_KERNELS", str(tmp_path / "nothing-built"))
    elif how == "context refused":
        pyxrt.OTHER_CONTEXTS[:] = [4, 4, 4, 4]  # other processes: our 3rd context would be the 7th
    elif how == "kernel error":
        pyxrt.fail("attention", at=2, state="ERT_CMD_STATE_ERROR")
    else:
        pyxrt.fail("attention", at=1, state="HANG")
        options = {"timeout_ms": 500}
    told: list[str] = []
    engine = Engine("tiny.en", "xrt", on_notice=told.append, device_options=options)
    result = engine.transcribe(load_audio(speech), GREEDY)
    assert result.text == cpu_text
    assert engine.device_name == "cpu"
    assert len(told) == 1 and "'cpu'" in told[0], told
    expect = {"no device": "cannot open NPU device 0", "kernels missing": "NPU kernels not built",
              "context refused": "driver refused a hardware context", "kernel error": "ERT_CMD_STATE_ERROR",
              "timeout": "ERT_CMD_STATE_TIMEOUT"}[how]
    assert expect in told[0], told[0]
    if how in ("kernel error", "timeout"):  # mid-job: the window is finished on cpu
        assert "'xrt' failed" in told[0]
        assert "cpu" in {e.device for e in result.events}
    if how == "kernel error":
        assert {e.device for e in result.events} >= {"xrt", "cpu"}


def test_cli_reports_the_fallback(monkeypatch, tmp_path, speech, capsys) -> None:
    pyxrt = install(monkeypatch, tmp_path, TINY)
    pyxrt.DEVICES = 0
    assert main(["transcribe", str(speech), "--model", "tiny.en", "--device", "xrt"]) == 0
    captured = capsys.readouterr()
    assert "note: device 'xrt' could not start" in captured.err
    assert captured.out.strip()

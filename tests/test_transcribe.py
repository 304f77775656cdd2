"""End to end: our encoder inside openai-whisper's transcribe loop, through the Engine and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper
from media import EVAL_DEV, espeak

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.cli import main
from npu_whisper_app.model.resolve import load_whisper_model
from npu_whisper_app.pipeline import Engine, TranscribeOptions

GREEDY = TranscribeOptions(language="en", temperature=(0.0,), batched=False)  # openai-whisper's loop: its exact words


@pytest.fixture(scope="session")
def tiny_engine() -> Engine:
    return Engine("tiny.en", "cpu")


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """Real speech where the eval set is there, else espeak-ng speech."""
    if (EVAL_DEV / "jfk.flac").exists():
        return EVAL_DEV / "jfk.flac"
    return espeak("ask not what your country can do for you", tmp_path_factory.mktemp("sp") / "jfk.wav")


@pytest.fixture(scope="session")
def espeak_wav(tmp_path_factory) -> Path:
    return espeak("The quick brown fox jumps over the lazy dog. Seven boats sailed at dawn.", tmp_path_factory.mktemp("es") / "fox.wav")


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_encoder_parity_on_real_speech(name: str, speech_wav: Path) -> None:
    """Same mel in, openai-whisper's fp32 encoder vs ours on cpu: max-abs error <= 2e-3."""
    from npu_whisper_app.devices.cpu import CpuDevice
    from npu_whisper_app.model.encoder import TiledEncoder

    model = load_whisper_model(name)
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(load_audio(speech_wav)), model.dims.n_mels)[None]
    ours = TiledEncoder(model.encoder, model.dims.n_audio_head, CpuDevice(precision="fp32"))
    with torch.no_grad():
        err = (ours(mel) - model.encoder(mel)).abs().max().item()
    assert err <= 2e-3


def test_text_equals_openai_whisper(tiny_engine: Engine, speech_wav: Path, espeak_wav: Path) -> None:
    reference = load_whisper_model("tiny.en")
    for path in (speech_wav, espeak_wav):
        audio = load_audio(path)
        expected = whisper.transcribe(reference, audio, language="en", temperature=0.0, fp16=False)
        ours = tiny_engine.transcribe(audio, GREEDY, source=str(path))
        assert ours.text == expected["text"]
        assert [(s["start"], s["end"], s["text"]) for s in ours.segments] == [(s["start"], s["end"], s["text"]) for s in expected["segments"]]
        assert ours.events and {e.device for e in ours.events} <= {"cpu", "host"}


def test_segments_stream_per_window_and_progress(tiny_engine: Engine, espeak_wav: Path) -> None:
    audio = load_audio(espeak_wav)
    long = np.concatenate([audio, np.zeros(16000 * 27, np.float32), audio])  # two 30 s windows
    got: list[dict] = []
    progress: list[tuple[float, float]] = []
    result = tiny_engine.transcribe(long, GREEDY, on_segment=got.append, on_progress=lambda d, t: progress.append((d, t)))
    assert got and [s["text"] for s in got] == [s["text"] for s in result.segments]
    assert len(progress) >= 2 and progress[-1][0] == pytest.approx(progress[-1][1], abs=0.05)
    assert len({e.window for e in result.events}) >= 2


def test_cancel_keeps_finished_segments(tiny_engine: Engine, espeak_wav: Path) -> None:
    audio = load_audio(espeak_wav)
    long = np.concatenate([audio, np.zeros(16000 * 27, np.float32)] * 3)
    first = tiny_engine.windows_encoded

    def stop() -> bool:  # after the first window is encoded, while the second runs
        return tiny_engine.windows_encoded - first >= 2

    result = tiny_engine.transcribe(long, GREEDY, should_stop=stop)
    assert result.cancelled
    assert "lazy dog" in result.text.lower()
    assert result.segments and result.segments[-1]["end"] <= 60


def test_word_timestamps(tiny_engine: Engine, espeak_wav: Path) -> None:
    opts = TranscribeOptions(language="en", temperature=(0.0,), word_timestamps=True)
    result = tiny_engine.transcribe(load_audio(espeak_wav), opts)
    words = [w for s in result.segments for w in s["words"]]
    assert len(words) >= 8
    assert all(w["start"] <= w["end"] for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_silence_and_noise_give_no_words(tiny_engine: Engine, kind: str) -> None:
    rng = np.random.default_rng(1)
    audio = np.zeros(16000 * 20, np.float32) if kind == "silence" else (0.05 * rng.standard_normal(16000 * 20)).astype(np.float32)
    result = tiny_engine.transcribe(audio, TranscribeOptions(language="en"))
    assert result.text.strip() == ""


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_every_format_and_profile(tmp_path: Path, espeak_wav: Path, capsys) -> None:
    out = tmp_path / "out"
    profile = tmp_path / "prof.json"
    rc = main(["transcribe", str(espeak_wav), "--model", "tiny.en", "--device", "cpu", "--output-dir", str(out), "--format", "all", "--profile", str(profile), "--word_timestamps", "True"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "lazy dog" in stdout.lower()
    stem = espeak_wav.stem
    for fmt in ("txt", "srt", "vtt", "tsv", "json"):
        assert (out / f"{stem}.{fmt}").stat().st_size > 0
    assert "-->" in (out / f"{stem}.srt").read_text() and (out / f"{stem}.vtt").read_text().startswith("WEBVTT")
    data = json.loads((out / f"{stem}.json").read_text())
    assert data["language"] == "en" and data["segments"] and "lazy dog" in data["text"].lower()
    assert "words" in data["segments"][0]
    prof = json.loads(profile.read_text())
    tiles = [e for e in prof["events"] if e["op"] == "attention"]
    # tiny.en: 4 layers x 6 heads x its query tiles, one window; the default (batched) mode
    # encodes the clip's chunk on a trimmed window: fewer than a 30 s window's 24 tiles
    assert tiles and len(tiles) % (4 * 6) == 0 and len(tiles) < 4 * 6 * 24
    assert {r["op"] for r in prof["summary"]["per_op"]} >= {"attention", "qkv", "fc1", "fc2", "ln1", "conv1"}


def test_cli_batch_with_bad_files(tmp_path: Path, espeak_wav: Path, capsys) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\x00\x01garbage" * 100)
    rc = main(["transcribe", str(tmp_path / "missing.flac"), str(empty), str(junk), str(espeak_wav), "--model", "tiny.en", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "lazy dog" in captured.out.lower()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert "missing.flac: file not found" in errors[0] and "empty.wav: file is empty" in errors[1] and "junk.mp3" in errors[2]
    assert "Traceback" not in captured.err


def test_cli_text_formats_only(tmp_path: Path, espeak_wav: Path) -> None:
    rc = main(["transcribe", str(espeak_wav), "--model", "tiny.en", "--device", "cpu", "-o", str(tmp_path), "-f", "srt,txt"])
    assert rc == 0 and sorted(p.suffix for p in tmp_path.iterdir()) == [".srt", ".txt"]


def test_cli_bad_model_and_format(tmp_path: Path, espeak_wav: Path, capsys) -> None:
    assert main(["transcribe", str(espeak_wav), "--model", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["transcribe", str(espeak_wav), "--format", "docx"])


def test_cli_devices_json(capsys) -> None:
    assert main(["devices", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cpu = next(d for d in data["devices"] if d["name"] == "cpu")
    assert cpu["available"] and data["auto"] in {d["name"] for d in data["devices"] if d["available"]}
    assert main(["devices"]) == 0
    assert "auto -> " in capsys.readouterr().out


def test_cli_bench_json(capsys) -> None:
    assert main(["bench", "--model", "tiny.en", "--device", "cpu", "--windows", "1", "--repeat", "1", "--precision", "fp32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    w = data["windows"][0]
    # fp32 against fp32 summed in another order: each is ~2e-3 from float64 (see test_precision)
    assert w["ours_s"] > 0 and w["reference_s"] > 0 and w["ratio"] > 0 and 0 < w["max_abs_err"] < 1e-2
    assert data["recording_cost"]["share_of_encoder"] < 0.05
    assert any(r["op"] == "attention" for r in data["per_op"])


def test_silent_gap_inside_speech_invents_nothing(tiny_engine: Engine, espeak_wav: Path) -> None:
    audio = load_audio(espeak_wav)
    gap = np.concatenate([audio, np.zeros(16000 * 40, np.float32), audio])
    result = tiny_engine.transcribe(gap, GREEDY)
    assert result.text.lower().count("lazy dog") == 2
    for seg in result.segments:  # no segment lives inside the silent 40 s
        assert not (len(audio) / 16000 + 1 < seg["start"] and seg["end"] < len(audio) / 16000 + 39)


def test_a_recorder_that_keeps_no_events_still_gives_the_encoder_time(speech_wav: Path) -> None:
    """The CLI keeps dispatch events only for --profile (a long job's are ~40 MB an hour):
    the job's encoder time is counted as the batches pass, not read back from them."""
    from npu_whisper_app.profiling import Recorder

    seen: list[int] = []
    rec = Recorder(keep=False)
    rec.add_listener(lambda batch: seen.append(len(batch)))
    engine = Engine("tiny.en", "cpu", recorder=rec)
    first = engine.transcribe(str(speech_wav), GREEDY)
    engine.forget_cached_window()  # else the same window is not encoded again
    second = engine.transcribe(str(speech_wav), GREEDY)
    assert first.events == [] and rec.events == [] and sum(seen) > 0
    assert 0 < first.encoder_s < first.elapsed_s and 0 < second.encoder_s < second.elapsed_s

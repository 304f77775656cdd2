"""Live dictation end to end with Whisper tiny.en: the ``listen`` CLI on a sequence of
eval-dev utterances, silence and noise, a failing source and a crashing decoder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from media import EVAL_DEV, write_wav
from test_live_parts import noises

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.live import sources

SR = 16000
ROOT = Path(__file__).resolve().parents[1]
CLIPS = ["goforward.wav", "forever.wav", "cards/005.wav", "digits_2934z.wav"]


def norm_words(text: str) -> list[str]:
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()(text).split()


@pytest.fixture(scope="module")
def engine():
    from npu_whisper_app.pipeline import Engine

    e = Engine("tiny.en", "cpu")
    yield e
    e.close()


@pytest.fixture(scope="module")
def sequence(tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    """The clips with 1.5 s of quiet room noise between them; returns (wav, clip spans)."""
    rng = np.random.default_rng(1)
    parts, spans, t = [], [], 0
    for clip in CLIPS:
        gap = (rng.standard_normal(int(1.5 * SR)) * 0.002).astype(np.float32)
        audio = load_audio(EVAL_DEV / clip)
        parts += [gap, audio]
        t += len(gap)
        spans.append((t / SR, (t + len(audio)) / SR))
        t += len(audio)
    parts.append((rng.standard_normal(int(1.5 * SR)) * 0.002).astype(np.float32))
    path = tmp_path_factory.mktemp("seq") / "sequence.wav"
    write_wav(path, np.concatenate(parts))
    return path, spans


def parse_lines(out: str) -> list[tuple[float, float, str]]:
    rows = []
    for line in out.splitlines():
        if not line.startswith("["):
            continue
        times, text = line[1:].split("] ", 1)
        a, b = (sum(float(x) * 60**i for i, x in enumerate(reversed(t.strip().split(":")))) for t in times.split("-->"))
        rows.append((a, b, text))
    return rows


@pytest.mark.parametrize("final", [["--final", "window", "--prompt-previous"], []], ids=["window", "transcribe-default"])
def test_listen_cli_matches_file_transcripts(engine, sequence, tmp_path: Path, final: list[str]) -> None:
    path, spans = sequence
    rec = tmp_path / "rec.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "npu_whisper_app.cli", "listen", "--model", "tiny.en", "--device", "cpu",
         "--input", str(path), "--speed", "1.5", "--recording", str(rec), "--output", str(tmp_path / "out.txt"), *final],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    lines = parse_lines(proc.stdout)
    assert len(lines) == len(CLIPS), proc.stdout
    from npu_whisper_app.pipeline import TranscribeOptions

    for (start, end, text), clip, (c0, c1) in zip(lines, CLIPS, spans):
        # the file alone as `transcribe --batched False` does it, the loop the transcribe
        # final runs (utterance._decode_as_file: with its fallback); the window final
        # without fallback. (The default batched mode may read a borderline clip otherwise:
        # tiny.en's digits_2934z "two nine three four zero" against "29340".)
        opts = TranscribeOptions(language="en", batched=False) if not final else TranscribeOptions(language="en", temperature=(0.0,), batched=False)
        alone = engine.transcribe(EVAL_DEV / clip, opts).text
        assert norm_words(text) == norm_words(alone), (clip, text, alone)
        # each utterance lies on its clip (VAD padding aside): nothing from the pauses
        assert c0 - 0.45 <= start and end <= c1 + 0.35, (clip, start, end, c0, c1)
    assert len(load_audio(rec)) == len(load_audio(path))
    assert len((tmp_path / "out.txt").read_text().splitlines()) == len(CLIPS)
    assert len(rec.with_suffix(".txt").read_text().splitlines()) == len(CLIPS)


def test_transcribe_final_is_the_file_transcription(engine) -> None:
    """``final="transcribe"`` decodes an utterance exactly as openai-whisper's loop does a
    file (``--batched False``: 30 s window, timestamps), unlike the fitted window;
    partials stay fitted."""
    from npu_whisper_app.live.decoder import DecoderOptions, WhisperUtteranceDecoder
    from npu_whisper_app.pipeline import TranscribeOptions

    audio = load_audio(EVAL_DEV / "cards/005.wav")
    dec = WhisperUtteranceDecoder(engine, DecoderOptions(final="transcribe"))
    final = dec.decode(audio)
    assert final.window_s == 30.0 and final.dropped is None
    assert final.text == engine.transcribe(audio, TranscribeOptions(language="en", batched=False)).text.strip()
    partial = dec.decode(audio, partial=True)
    assert partial.window_s < 30.0 and norm_words(partial.text)
    assert dec.decode(np.zeros(3 * SR, np.float32)).text == ""


def run_listen_inprocess(argv: list[str], capsys) -> tuple[int, str, str]:
    from npu_whisper_app import cli

    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["silence", "white", "pink", "brown"])
def test_silence_and_noise_give_no_text(kind: str, tmp_path: Path, capsys) -> None:
    audio = np.zeros(60 * SR, np.float32) if kind == "silence" else noises(60, seed=3)[kind]
    path = write_wav(tmp_path / f"{kind}.wav", audio)
    code, out, err = run_listen_inprocess(
        ["listen", "--model", "tiny.en", "--device", "cpu", "--input", str(path), "--speed", "20", "--recording", str(tmp_path / "r.wav")], capsys
    )
    assert code == 0, err
    assert out.strip() == ""
    assert abs(len(load_audio(tmp_path / "r.wav")) - len(audio)) <= SR * 0.1


def test_decoder_rejects_what_whisper_invents(engine) -> None:
    """Second line of defence, without the VAD: Whisper's own verdict drops the text it
    makes up on silence and noise."""
    from npu_whisper_app.live.decoder import WhisperUtteranceDecoder

    dec = WhisperUtteranceDecoder(engine)
    clips = [np.zeros(3 * SR, np.float32)] + [x[: 3 * SR] for x in noises(3, seed=5).values()]
    for audio in clips:
        d = dec.decode(audio)
        assert d.text == "" and d.dropped, d


def test_source_failure_keeps_text_and_recording(sequence, tmp_path: Path, capsys, monkeypatch) -> None:
    path, spans = sequence
    fail_at = (spans[1][1] + spans[2][0]) / 2  # in the pause after the 2nd utterance

    class Unplugged(sources.FilePlayer):
        def __init__(self, audio, speed=1.0, **kw):
            super().__init__(audio, speed=speed, fail_after_s=fail_at)

    monkeypatch.setattr(sources, "FilePlayer", Unplugged)
    rec = tmp_path / "rec.wav"
    code, out, err = run_listen_inprocess(
        ["listen", "--model", "tiny.en", "--device", "cpu", "--input", str(path), "--speed", "3", "--recording", str(rec)], capsys
    )
    assert code == 1
    assert "unplugged" in err and str(rec) in err
    lines = parse_lines(out)
    assert len(lines) == 2 and "forward" in lines[0][2].lower() and "forever" in lines[1][2].lower()
    assert abs(len(load_audio(rec)) / SR - fail_at) < 0.1
    assert len(rec.with_suffix(".txt").read_text().splitlines()) == 2


def test_decoder_crash_keeps_text_and_recording(sequence, tmp_path: Path, capsys, monkeypatch) -> None:
    from npu_whisper_app.live import decoder as decoder_mod

    real = decoder_mod.WhisperUtteranceDecoder.decode
    finals = []

    def crashing(self, audio, prompt=None, should_stop=None, partial=False):
        if not partial:
            finals.append(1)
            if len(finals) == 3:
                raise RuntimeError("injected decoder crash")
        return real(self, audio, prompt=prompt, should_stop=should_stop, partial=partial)

    monkeypatch.setattr(decoder_mod.WhisperUtteranceDecoder, "decode", crashing)
    path, spans = sequence
    rec = tmp_path / "rec.wav"
    code, out, err = run_listen_inprocess(
        ["listen", "--model", "tiny.en", "--device", "cpu", "--input", str(path), "--speed", "3", "--recording", str(rec)], capsys
    )
    assert code == 1
    assert "injected decoder crash" in err and str(rec) in err
    # the crash came at the 3rd final-mode decode: the 3rd utterance's final, or a
    # speculative one started at a short pause (on a loaded machine one can come inside
    # the 2nd utterance). Every line printed before it is kept, and the recording goes on
    # into the utterance after the last line: nothing said before the crash is lost
    lines = parse_lines(out)
    assert 1 <= len(lines) <= 2, lines
    assert len(load_audio(rec)) / SR >= spans[len(lines)][0]
    assert len(rec.with_suffix(".txt").read_text().splitlines()) == len(lines)


def test_ctrl_c_stops_cleanly_keeping_what_was_said(sequence, tmp_path: Path) -> None:
    import signal
    import time

    path, spans = sequence
    rec = tmp_path / "rec.wav"
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "npu_whisper_app.cli", "listen", "--model", "tiny.en", "--device", "cpu",
         "--input", str(path), "--speed", "1.5", "--recording", str(rec)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    first = proc.stdout.readline()  # the first utterance is decided ...
    assert first.startswith("["), proc.stderr.read()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # ... then Ctrl+C in the middle of the session
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "forward" in first.lower()
    assert "recording:" in err and str(rec) in err
    heard = len(load_audio(rec)) / SR
    assert spans[0][1] < heard < spans[-1][1]
    assert len(rec.with_suffix(".txt").read_text().splitlines()) == 1 + len(parse_lines(rest))


def test_decode_is_cancelled_between_tokens(engine) -> None:
    """A live partial overtaken by a final must stop between decoded tokens, not run to
    the end of its text: should_stop is polled before every token."""
    from npu_whisper_app.live.decoder import Cancelled, WhisperUtteranceDecoder

    audio = load_audio(EVAL_DEV / "jfk.flac") if (EVAL_DEV / "jfk.flac").exists() else load_audio(EVAL_DEV / "forever.wav")
    dec = WhisperUtteranceDecoder(engine)
    full = dec.decode(audio)  # also leaves this window's features in the encoder's cache,
    assert len(full.text.split()) >= 5  # so below every poll comes from the token loop
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(Cancelled):
        dec.decode(audio, should_stop=stop)
    assert len(polls) == 4  # three tokens decoded, stopped before the fourth
    assert dec.decode(audio).text == full.text  # the next decode runs normally

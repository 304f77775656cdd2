"""Batched long-form mode (longform/): VAD chunks, batched decoding, times, words, many
files, cancel. Real speech (eval-dev) and real weights (tiny.en)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from media import EVAL_DEV, write_wav

from npu_whisper_app.audio import SAMPLE_RATE
from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.jobs import IDLE, Cancelled, JobContext
from npu_whisper_app.longform import BatchedStats, VadOptions
from npu_whisper_app.longform.chunks import Chunk, merge_regions, speech_regions, vad_probs
from npu_whisper_app.pipeline import Engine, TranscribeOptions


def batched(engine: Engine, inputs: list, opts: TranscribeOptions, ctx: JobContext = IDLE, *, batch_size: int = 8, stats=None, on_file_segment=None) -> list[dict]:
    """The batched mode through the engine (its fast decoder, its job context)."""
    from dataclasses import replace

    return engine.transcribe_batched_many(
        inputs, replace(opts, batch_size=batch_size), on_progress=ctx.on_progress, on_segment=ctx.on_segment,
        should_stop=ctx.should_stop, stats=stats, on_file_segment=on_file_segment,
    )


def _wer(ref: str, hyp: str) -> float:
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    n = EnglishTextNormalizer()
    return jiwer.wer(n(ref), n(hyp))


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine("tiny.en", device="cpu")


@pytest.fixture(scope="module")
def recording() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """eval-dev's referenced clips twice over with 0.3-2.5 s pauses (~75 s): the audio
    and each clip's (start s, end s, reference)."""
    rows = [json.loads(line) for line in (EVAL_DEV / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["ref"]]
    rng = np.random.default_rng(7)
    parts, spans, t = [], [], 0.0
    for _ in range(2):
        for r in rows:
            a = load_audio(EVAL_DEV / r["path"])
            spans.append((t, t + a.size / SAMPLE_RATE, r["ref"]))
            gap = np.zeros(int(SAMPLE_RATE * rng.uniform(0.3, 2.5)), np.float32)
            parts += [a, gap]
            t += (a.size + gap.size) / SAMPLE_RATE
    return np.concatenate(parts), spans


def test_chunks_cut_at_pauses(recording) -> None:
    audio, spans = recording
    probs = vad_probs(audio)
    assert probs.size == -(-audio.size // 512)
    regions = speech_regions(probs, audio.size, VadOptions(speech_pad_ms=0))
    # every clip's speech lies inside the regions, and no region crosses a whole pause
    for s, e, _ in spans:
        mid = (s + e) / 2 * SAMPLE_RATE
        assert any(a <= mid < b for a, b in regions)
    chunks = merge_regions(regions, 10.0)
    assert all(c.end - c.start <= 10 * SAMPLE_RATE for c in chunks)
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:]))
    # a 40 s region with no pause is split under the limit
    long_probs = np.ones(int(40 * SAMPLE_RATE / 512), np.float32)
    cut = speech_regions(long_probs, long_probs.size * 512, VadOptions(max_chunk_s=15))
    assert len(cut) >= 3 and all(b - a <= 15 * SAMPLE_RATE for a, b in cut)
    assert silent_chunks() == []


def silent_chunks() -> list[Chunk]:
    from npu_whisper_app.longform.chunks import chunk_probs

    silence = np.zeros(20 * SAMPLE_RATE, np.float32)
    return chunk_probs(vad_probs(silence), silence.size)


def test_batched_matches_references_and_sequential(engine: Engine, recording) -> None:
    audio, spans = recording
    ref = " ".join(r for _, _, r in spans)
    stats = BatchedStats()
    got: list[dict] = []
    progress: list[tuple[float, float]] = []
    opts = TranscribeOptions(language="en")
    result = batched(engine, [audio], opts, JobContext(on_segment=got.append, on_progress=lambda d, t: progress.append((d, t))), stats=stats)[0]
    seq = engine.transcribe(audio, TranscribeOptions(language="en", temperature=(0.0,))).result
    wer_b, wer_s = _wer(ref, result["text"]), _wer(ref, seq["text"])
    assert wer_b <= max(0.12, wer_s + 0.02), (wer_b, wer_s, result["text"])
    assert stats.batches >= 1 and stats.chunks >= 3 and stats.batches < stats.chunks
    # segments: in order, ids 0.., inside the audio, the openai-whisper fields
    segs = result["segments"]
    assert got == segs and [s["id"] for s in segs] == list(range(len(segs)))
    assert all(a["start"] <= b["start"] for a, b in zip(segs, segs[1:]))
    assert all(0 <= s["start"] <= s["end"] <= audio.size / SAMPLE_RATE + 0.01 for s in segs)
    keys = {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob"}
    assert all(keys <= set(s) for s in segs)
    assert result["text"] == "".join(s["text"] for s in segs) and result["language"] == "en"
    # absolute times: the JFK quote's segments start where the clip was put
    for s0, e0, r in spans:
        if r.startswith("And so my fellow"):
            hit = [s for s in segs if "country" in s["text"].lower() and s0 - 1.0 <= s["start"] <= e0]
            assert hit, (s0, e0, [(s["start"], s["text"]) for s in segs])
    assert progress and progress[-1][0] == pytest.approx(progress[-1][1]) and progress[-1][1] == pytest.approx(audio.size / SAMPLE_RATE)
    assert all(a[0] <= b[0] for a, b in zip(progress, progress[1:]))


def test_word_timestamps_and_file_input(engine: Engine, recording, tmp_path: Path) -> None:
    audio, spans = recording
    piece = audio[: int(spans[8][1] * SAMPLE_RATE) + 8000]  # the first round of clips
    path = write_wav(tmp_path / "rec.wav", piece)
    opts = TranscribeOptions(language="en", word_timestamps=True)
    res = batched(engine, [path], opts, batch_size=3)[0]
    words = [w for s in res["segments"] for w in s["words"]]
    assert len(words) >= 20
    assert all(a["start"] <= b["start"] + 1e-6 and w["start"] <= w["end"] for a, b in zip(words, words[1:]) for w in (a,))
    # "forever" is said inside the forever clip's span
    s0, e0, _ = next(sp for sp in spans if "forever" in sp[2])
    fw = [w for w in words if "forever" in w["word"].lower()]
    assert fw and all(s0 - 0.5 <= w["start"] <= e0 + 0.5 for w in fw), (s0, e0, fw)


def test_many_files_share_batches_and_cancel(engine: Engine) -> None:
    rows = [json.loads(line) for line in (EVAL_DEV / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["ref"]]
    audios = [load_audio(EVAL_DEV / r["path"]) for r in rows]
    stats = BatchedStats()
    seen: list[tuple[int, str]] = []
    greedy = TranscribeOptions(language="en", temperature=(0.0,))
    # with fallback (the default): tiny.en loops on "five five" at temperature 0; the
    # fallback samples, so the draws are seeded
    torch.manual_seed(0)
    out = batched(engine, audios, TranscribeOptions(language="en"), batch_size=8, stats=stats, on_file_segment=lambda i, s: seen.append((i, s["text"])))
    assert len(out) == len(rows) and stats.batches == -(-stats.chunks // 8) and stats.batches < len(rows)
    total = _wer(" ".join(r["ref"] for r in rows), " ".join(o["text"] for o in out))
    assert total <= 0.25, [o["text"] for o in out]
    assert _wer(rows[-1]["ref"], out[-1]["text"]) <= 0.1  # jfk, the last file
    assert [i for i, _ in seen] == sorted(i for i, _ in seen)
    # digital silence: no chunk, no text
    assert batched(engine, [np.zeros(10 * SAMPLE_RATE, np.float32)], TranscribeOptions(language="en"))[0]["segments"] == []
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        batched(engine, audios, greedy, JobContext(should_stop=stop), batch_size=2)
    assert len(calls) == 2


def test_fallback_per_row(engine: Engine) -> None:
    """Rows failing openai-whisper's rules are decoded again at the next temperature
    (here every row fails: avg_logprob is always under 0), best-of rows over 2 windows."""
    audios = [load_audio(EVAL_DEV / "goforward.wav"), load_audio(EVAL_DEV / "forever.wav")]
    stats = BatchedStats()
    opts = TranscribeOptions(language="en", temperature=(0.0, 0.5), best_of=2, logprob_threshold=0.0, no_speech_threshold=None)
    out = batched(engine, audios, opts, stats=stats)
    assert stats.fallback_rows == 2 and stats.batches == 1
    assert all(s["temperature"] == 0.5 for o in out for s in o["segments"])
    assert _wer("go forward ten meters", out[0]["text"]) <= 0.25 and "forever" in out[1]["text"].lower()


def test_cli_batched_mode_reads_the_file_and_prints_its_words(capsys) -> None:
    """`transcribe --batched` hands the path to the engine (read forward, never whole)."""
    from npu_whisper_app.cli import main

    code = main(["transcribe", "--model", "tiny.en", "--device", "cpu", "--batched", "--language", "en", str(EVAL_DEV / "jfk.flac")])
    out = capsys.readouterr().out
    assert code == 0
    assert "ask not what your country can do for you" in out.lower()


def test_batched_is_the_default(engine: Engine, recording) -> None:
    """No ``batched`` given: every recording takes the batched mode (its text equals
    batched=True's, not the sequential loop's); options only the sequential loop has, and
    batched=False, keep openai-whisper's loop."""
    o = TranscribeOptions()
    assert o.batched is None and o.batched_for(1.0) and o.batched_for(3600)
    assert TranscribeOptions(batched=False).batched_for(3600) is False and TranscribeOptions(batched=True).batched_for(5) is True
    assert not TranscribeOptions(clip_timestamps="0,60").batched_for(3600)
    assert not TranscribeOptions(hallucination_silence_threshold=2.0).batched_for(3600)
    assert not TranscribeOptions(initial_prompt="Glossary", carry_initial_prompt=True).batched_for(30)
    audio, _ = recording
    long = np.concatenate([audio] * 3)  # ~225 s
    greedy = dict(language="en", temperature=(0.0,))
    between: list[int] = []  # the app's owner thread runs dictation decodes between batches
    auto = engine.transcribe(long, TranscribeOptions(**greedy), between_windows=lambda: between.append(1))
    assert between
    forced = engine.transcribe(long, TranscribeOptions(**greedy, batched=True))
    sequential = engine.transcribe(long, TranscribeOptions(**greedy, batched=False))
    assert auto.text == forced.text and auto.text != sequential.text


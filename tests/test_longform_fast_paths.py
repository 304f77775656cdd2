"""The batched long-form mode's fast paths give the numbers of the slow ones: the batched
Silero VAD (the streaming model's probabilities and chunks), the level normaliser over
many frames at once, and the decoder step that skips finished rows (the same tokens).
Real speech (eval-dev), real weights (tiny.en)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from media import EVAL_DEV

from npu_whisper_app.audio import SAMPLE_RATE
from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.live.vad import FRAME, LevelNormalizer, SileroVAD
from npu_whisper_app.longform.chunks import chunk_probs, vad_probs
from npu_whisper_app.longform.vad_batched import BatchedSileroVAD, create_batched_vad
from npu_whisper_app.pipeline import Engine, TranscribeOptions


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """eval-dev's clips one after another with 0.2-2 s pauses (~50 s)."""
    rows = [json.loads(line) for line in (EVAL_DEV / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(3)
    parts = []
    for r in rows:
        parts += [load_audio(EVAL_DEV / r["path"]), np.zeros(int(SAMPLE_RATE * rng.uniform(0.2, 2.0)), np.float32)]
    return np.concatenate(parts)


def test_level_normalizer_frames_equal_frame_by_frame(speech) -> None:
    frames = (speech[: (speech.size // FRAME) * FRAME] * 0.003).reshape(-1, FRAME)
    one, many = LevelNormalizer(), LevelNormalizer()
    expect = np.stack([one(f) for f in frames[:700]])
    got = np.concatenate([many.frames(frames[:300]), many.frames(frames[300:700])])  # state carried between calls
    assert np.allclose(got, expect, rtol=1e-5, atol=1e-9)
    assert abs(one.envelope_db - many.envelope_db) < 1e-9 and abs(one.gain_db - many.gain_db) < 1e-9
    assert many.gain_db > 0  # the quiet copy was raised


@pytest.mark.parametrize("level", [1.0, 0.003])  # as recorded, and -50 dB (normalised up for the VAD)
def test_batched_vad_gives_the_streaming_models_chunks(speech, level: float) -> None:
    audio = (speech * level).astype(np.float32)
    stream = vad_probs(audio, SileroVAD())
    batched = vad_probs(audio, BatchedSileroVAD())
    assert batched.shape == stream.shape
    assert float(np.abs(batched - stream).max()) < 1e-4
    assert chunk_probs(batched, audio.size) == chunk_probs(stream, audio.size)
    assert len(chunk_probs(batched, audio.size)) >= 2
    # fed in uneven blocks (as a file is read), the state carries across calls
    vad = BatchedSileroVAD()
    cuts = [0, 1000, 1000, 7777, 123_457, audio.size]
    pieces = [vad.process(audio[a:b]) for a, b in zip(cuts, cuts[1:])]
    assert np.allclose(np.concatenate(pieces), batched[: audio.size // FRAME], atol=1e-6)


def test_batched_vad_is_the_default_of_the_long_form_mode() -> None:
    assert isinstance(create_batched_vad(), BatchedSileroVAD)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine("tiny.en", device="cpu")


def test_finished_rows_skip_their_attention_with_the_same_tokens(engine: Engine, speech) -> None:
    """Chunks of different lengths end at different steps; the step that skips finished
    rows' attention reads the same tokens as the one that computes every row."""
    fd = engine._fast
    if fd is None or fd.step_params is None:
        pytest.skip("the compiled decoder step is AVX-512 only; the Python loop has no finished-row path")
    opts = TranscribeOptions(language="en", temperature=(0.0,), batched=True, batch_size=8)
    with_skip = engine.transcribe(speech, opts).result
    eot, fd.eot = fd.eot, None
    try:
        every_row = engine.transcribe(speech, opts).result
    finally:
        fd.eot = eot
    assert len(with_skip["segments"]) >= 3
    assert [s["tokens"] for s in with_skip["segments"]] == [s["tokens"] for s in every_row["segments"]]


def test_step_with_finished_rows_leaves_live_rows_unchanged(engine: Engine) -> None:
    fd = engine._fast
    if fd is None or fd.step_params is None:
        pytest.skip("the compiled decoder step is AVX-512 only")
    g = torch.Generator().manual_seed(1)
    rows, frames = 4, 300
    feats = torch.randn(rows, frames, fd.n_state, generator=g) * 0.5
    fd.forget_window()
    fd.cross_kv(feats)
    cross16 = fd.cross16()
    cache = [(torch.randn(rows, 16, fd.n_state, generator=g), torch.randn(rows, 16, fd.n_state, generator=g)) for _ in fd.layers]
    x = torch.randn(rows, 1, fd.n_state, generator=g)
    all_rows = fd.step(x.clone(), [(k.clone(), v.clone()) for k, v in cache], cross16, 5, 1)
    live = torch.tensor([True, False, True, False])
    some = fd.step(x.clone(), [(k.clone(), v.clone()) for k, v in cache], cross16, 5, 1, live)
    fd.forget_window()
    assert all_rows is not None and some is not None
    assert torch.equal(all_rows[live], some[live])
    assert not torch.equal(all_rows[~live], some[~live])  # their attention was skipped


def test_a_chunk_reads_the_same_whatever_it_is_batched_with(engine: Engine, speech) -> None:
    """Each chunk is encoded on its own window and attended over its own frames: a short
    recording's tokens are the same alone and in one batch with a longer one's chunks."""
    from npu_whisper_app.longform.batched import BatchedStats

    short, longer = load_audio(EVAL_DEV / "jfk.flac"), speech[: SAMPLE_RATE * 40]
    opts = TranscribeOptions(language="en", temperature=(0.0,), batched=True, batch_size=8)
    stats = [BatchedStats() for _ in range(3)]
    alone = engine.transcribe_batched_many([short], opts, stats=stats[0])[0]
    engine.transcribe_batched_many([longer], opts, stats=stats[1])
    together = engine.transcribe_batched_many([longer, short], opts, stats=stats[2])
    assert stats[2].batches == 1 and stats[2].chunks == stats[0].chunks + stats[1].chunks >= 3
    # each window its own length: no chunk's window grew to the batch's longest
    assert stats[2].encoded_frames == stats[0].encoded_frames + stats[1].encoded_frames < 3000 * stats[2].chunks
    assert [s["tokens"] for s in together[1]["segments"]] == [s["tokens"] for s in alone["segments"]]
    assert "ask not what your country can do for you" in alone["text"].lower()


def test_quiet_chunks_are_read_as_loud_ones(engine: Engine) -> None:
    """A chunk 40 dB down is raised before its log-mel: on a trimmed window Whisper
    misread such speech (loops, dropped words) while it reads it at speech level."""
    from npu_whisper_app.longform.batched import TARGET_PEAK_DB, raised_to_speech_level

    audio = load_audio(EVAL_DEV / "jfk.flac")
    loud = audio / np.abs(audio).max() * 0.9
    assert raised_to_speech_level(loud) is loud  # never lowered, loud audio untouched
    quiet = (loud * 0.01).astype(np.float32)
    raised = raised_to_speech_level(quiet)
    assert abs(20 * np.log10(np.abs(raised).max()) - TARGET_PEAK_DB) < 0.01
    from whisper.normalizers import EnglishTextNormalizer

    words = EnglishTextNormalizer()
    opts = TranscribeOptions(language="en", temperature=(0.0,), batched=True)
    assert words(engine.transcribe(quiet, opts).text) == words(engine.transcribe(loud, opts).text)


def test_no_speech_found_is_said(engine: Engine) -> None:
    rng = np.random.default_rng(0)
    hum = (0.05 * np.sin(2 * np.pi * 50 * np.arange(8 * SAMPLE_RATE) / SAMPLE_RATE) + 0.001 * rng.standard_normal(8 * SAMPLE_RATE)).astype(np.float32)
    result = engine.transcribe(hum, TranscribeOptions(language="en", batched=True))
    assert result.text == ""
    assert any("found no speech" in n for n in result.notices)


def test_language_detected_on_a_trimmed_window() -> None:
    """A multilingual model, no language given: the batched mode detects it on the first
    chunk's trimmed window (openai-whisper's detect_language would encode those features
    again as if they were a mel)."""
    base = Engine("base", device="cpu")
    try:
        result = base.transcribe(load_audio(EVAL_DEV / "jfk.flac"), TranscribeOptions(temperature=(0.0,), batched=True))
    finally:
        base.close()
    assert result.result["language"] == "en"
    assert "ask not what your country can do for you" in result.text.lower()

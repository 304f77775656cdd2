"""The fast decoder gives openai-whisper's tokens on real speech (tiny.en for speed)."""

from __future__ import annotations

import json

import pytest
import whisper

from media import EVAL_DEV, espeak
from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.model.fast_decoder import FastInference, attach_fast_decoder, detach_fast_decoder
from npu_whisper_app.model.resolve import load_whisper_model


def _clips(tmp_path_factory) -> list:
    manifest = EVAL_DEV / "manifest.jsonl"
    if manifest.exists():
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        return [load_audio(EVAL_DEV / r["path"]) for r in rows if r["id"] in ("jfk", "forever", "cards/005", "goforward")]
    d = tmp_path_factory.mktemp("fd")
    return [load_audio(espeak("The quick brown fox jumps over the lazy dog.", d / "fox.wav"))]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return _clips(tmp_path_factory)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(temperature=0.0, condition_on_previous_text=True),
        dict(temperature=(0.0, 0.2, 0.4), condition_on_previous_text=True, initial_prompt="Playing cards and commands."),
        dict(temperature=0.0, beam_size=3),
        # the prompt's rows times 3 beams take the fp32 cross-attention, its keys/values
        # made head-major and repeated per beam on first use
        dict(temperature=0.0, beam_size=3, initial_prompt="Playing cards and commands."),
    ],
    ids=["greedy", "prompt+fallback", "beam3", "beam3+prompt"],
)
def test_same_tokens_as_openai_whisper(clips, kwargs) -> None:
    reference = load_whisper_model("tiny.en")
    fast = load_whisper_model("tiny.en")
    attach_fast_decoder(fast)
    for audio in clips:
        want = whisper.transcribe(reference, audio, language="en", fp16=False, **kwargs)
        got = whisper.transcribe(fast, audio, language="en", fp16=False, **kwargs)
        assert [s["tokens"] for s in got["segments"]] == [s["tokens"] for s in want["segments"]]
        assert got["text"] == want["text"]


def test_long_audio_with_previous_text_prompt(clips) -> None:
    """Several windows: the prompt (previous text) path, where only two rows get logits."""
    import numpy as np

    audio = np.concatenate([np.concatenate([c, np.zeros(8000, np.float32)]) for c in clips] * 3)
    assert len(audio) > 30 * 16000
    reference = load_whisper_model("tiny.en")
    fast = load_whisper_model("tiny.en")
    attach_fast_decoder(fast)
    want = whisper.transcribe(reference, audio, language="en", temperature=0.0, fp16=False)
    got = whisper.transcribe(fast, audio, language="en", temperature=0.0, fp16=False)
    assert [s["tokens"] for s in got["segments"]] == [s["tokens"] for s in want["segments"]]


def test_only_models_with_fast_decoder_use_it() -> None:
    import whisper.decoding as wdec

    plain = load_whisper_model("tiny.en")
    fast = load_whisper_model("tiny.en")
    attach_fast_decoder(fast)
    assert isinstance(wdec.PyTorchInference(fast, 3), FastInference)
    assert not isinstance(wdec.PyTorchInference(plain, 3), FastInference)
    assert "_npu_fast_decoder" not in "".join(fast.state_dict())
    detach_fast_decoder(fast)
    assert not isinstance(wdec.PyTorchInference(fast, 3), FastInference)


def test_int8_option_runs(clips) -> None:
    """int8 dynamic quantisation is an option (it may change tokens): it must transcribe."""
    fast = load_whisper_model("tiny.en")
    attach_fast_decoder(fast, quant="int8")
    text = whisper.transcribe(fast, clips[0], language="en", temperature=0.0, fp16=False)["text"]
    assert len(text.split()) >= 3
    with pytest.raises(ValueError):
        attach_fast_decoder(load_whisper_model("tiny.en"), quant="int4")

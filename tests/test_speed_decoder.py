"""The fast decoder gives openai-whisper's tokens on real speech (tiny.en for speed)."""

from __future__ import annotations

import json

import pytest
import whisper
from media import EVAL_DEV, espeak

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.devices.cpu_native import load_decoder_kernel
from npu_whisper_app.model import whisper_loop
from npu_whisper_app.model.fast_decoder import FastInference, attach_fast_decoder
from npu_whisper_app.model.resolve import load_whisper_model


def fast_transcribe(model, fd, audio, **kwargs) -> dict:
    """Our transcribe loop with the fast decoder's token step (as the Engine runs it)."""
    mel = whisper_loop.ArrayMel(audio, model.dims.n_mels)
    return whisper_loop.transcribe(model, mel, make_inference=fd.inference_factory(), **kwargs)


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
    # as the Engine attaches it: the decoder's weights held once, as fp16
    fd = attach_fast_decoder(fast, kernel=load_decoder_kernel(), fp16_only=True)
    for audio in clips:
        want = whisper.transcribe(reference, audio, language="en", fp16=False, **kwargs)
        got = fast_transcribe(fast, fd, audio, language="en", **kwargs)
        assert [s["tokens"] for s in got["segments"]] == [s["tokens"] for s in want["segments"]]
        assert got["text"] == want["text"]


def test_long_audio_with_previous_text_prompt(clips) -> None:
    """Several windows: the prompt (previous text) path, where only two rows get logits."""
    import numpy as np

    audio = np.concatenate([np.concatenate([c, np.zeros(8000, np.float32)]) for c in clips] * 3)
    assert len(audio) > 30 * 16000
    reference = load_whisper_model("tiny.en")
    fast = load_whisper_model("tiny.en")
    # as the Engine attaches it: the decoder's weights held once, as fp16
    fd = attach_fast_decoder(fast, kernel=load_decoder_kernel(), fp16_only=True)
    want = whisper.transcribe(reference, audio, language="en", temperature=0.0, fp16=False)
    got = fast_transcribe(fast, fd, audio, language="en", temperature=0.0)
    assert [s["tokens"] for s in got["segments"]] == [s["tokens"] for s in want["segments"]]


def test_fast_decoder_is_scoped_to_our_calls(clips) -> None:
    """The fast token step is used by the decode calls that are given it, and nothing in
    openai-whisper's modules is replaced: its own transcribe on the same model still
    runs its PyTorchInference."""
    import torch
    import whisper.decoding as wdec

    model = load_whisper_model("tiny.en")
    fd = attach_fast_decoder(model, kernel=load_decoder_kernel())
    made = []
    steps = []

    class Counting(FastInference):
        def logits(self, tokens, audio_features):
            steps.append(tokens.shape)
            return super().logits(tokens, audio_features)

    def factory(m, n):
        made.append(Counting(fd, n))
        return made[-1]

    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(clips[0]), model.dims.n_mels)
    opts = whisper.DecodingOptions(language="en", fp16=False, without_timestamps=True)
    ours = whisper_loop.decode(model, mel, opts, factory)
    assert len(made) == 1 and len(steps) >= len(ours.tokens)  # the fast step decoded every token
    assert wdec.PyTorchInference.__module__ == "whisper.decoding"
    with torch.no_grad():
        theirs = whisper.decode(model, mel, opts)
    assert len(made) == 1  # openai-whisper's own decode did not come through ours
    assert ours.tokens == theirs.tokens
    assert "_npu" not in "".join(model.state_dict())


def test_int8_option_runs(clips) -> None:
    """int8 dynamic quantisation is an option (it may change tokens): it must transcribe."""
    fast = load_whisper_model("tiny.en")
    fd = attach_fast_decoder(fast, quant="int8")
    text = fast_transcribe(fast, fd, clips[0], language="en", temperature=0.0)["text"]
    assert len(text.split()) >= 3
    with pytest.raises(ValueError):
        attach_fast_decoder(load_whisper_model("tiny.en"), quant="int4")

"""Speed work on the cpu device must keep the numbers: precision option bounds, tiling, threads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import whisper
from media import EVAL_DEV, espeak

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.devices.cpu import CpuDevice
from npu_whisper_app.model.encoder import TiledEncoder
from npu_whisper_app.model.resolve import load_whisper_model
from npu_whisper_app.profiling import Recorder


@pytest.fixture(scope="module")
def tiny():
    return load_whisper_model("tiny.en")


@pytest.fixture(scope="module")
def mel(tiny, tmp_path_factory):
    path = EVAL_DEV / "jfk.flac"
    if not path.exists():
        path = espeak("ask not what your country can do for you", tmp_path_factory.mktemp("sp") / "jfk.wav")
    return whisper.log_mel_spectrogram(whisper.pad_or_trim(load_audio(path)), tiny.dims.n_mels)[None]


@pytest.mark.parametrize("threads,native", [(1, False), (2, False), (None, True)])
def test_fp32_within_bar(tiny, mel, threads: int | None, native: bool) -> None:
    """fp32 (the default) with the compiled attention kernel, or the Python tiles on the
    thread pool or on one thread: max-abs error <= 2e-3."""
    enc = TiledEncoder(tiny.encoder, tiny.dims.n_audio_head, CpuDevice(threads=threads, precision="fp32", native=native))
    with torch.no_grad():
        assert (enc(mel) - tiny.encoder(mel)).abs().max().item() <= 2e-3


def test_bf16_error_is_bounded_and_words_hold(tiny, mel) -> None:
    """bf16 inputs, fp32 accumulation: the error is that of bf16 (far above the fp32 bar,
    bounded relative to the activations), and the decoded words stay the same."""
    enc = TiledEncoder(tiny.encoder, tiny.dims.n_audio_head, CpuDevice(precision="bf16"))
    with torch.no_grad():
        ref = tiny.encoder(mel)
        out = enc(mel)
    rel = ((out - ref).abs().max() / ref.abs().max()).item()
    assert 0 < rel < 0.1
    assert torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0).item() > 0.999
    opts = whisper.DecodingOptions(language="en", fp16=False, without_timestamps=True)
    assert whisper.decode(tiny, out[0], opts).text == whisper.decode(tiny, ref[0], opts).text


def test_bad_precision_rejected() -> None:
    with pytest.raises(ValueError):
        CpuDevice(precision="fp8")


def test_packed_attention_equals_contract_attention() -> None:
    torch.manual_seed(0)
    t, h, d = 1500, 4, 64
    qkv = torch.randn(t, 3 * h * d)
    rec = Recorder()
    dev = CpuDevice(rec, precision="fp32")
    packed = dev.attention_qkv(qkv, h)
    split = qkv.view(t, 3, h, d).permute(1, 2, 0, 3)
    ref = torch.nn.functional.scaled_dot_product_attention(split[0], split[1], split[2]).permute(1, 0, 2).reshape(t, h * d)
    assert (packed - ref).abs().max().item() < 1e-5
    rec.flush()
    tiles = math.ceil(t / 64)
    assert sorted((e.head, e.tile) for e in rec.events if e.op == "attention") == [(i, j) for i in range(h) for j in range(tiles)]


def test_fused_residual_gemm() -> None:
    torch.manual_seed(1)
    dev = CpuDevice(Recorder(), precision="fp32")
    w = dev.prepare_gemm(torch.randn(64, 96), torch.randn(96))
    x, r = torch.randn(1000, 64), torch.randn(1000, 96)
    out = dev.gemm(x, w, op="fc2", residual=r)
    assert (out - (r + x @ w.weight + w.bias)).abs().max().item() < 1e-4
    g = dev.gemm(x, w, op="fc1", gelu=True)
    assert (g - torch.nn.functional.gelu(x @ w.weight + w.bias)).abs().max().item() < 1e-4


def test_trimmed_frames_drops_the_zero_padding_in_whole_tiles() -> None:
    from npu_whisper_app.model.encoder import trimmed_frames

    mel = torch.zeros(2, 80, 3000)
    mel[0, :, :700] = torch.randn(80, 700)
    mel[1, :, :300] = torch.randn(80, 300)
    assert trimmed_frames(mel, 0, 0) == 768  # the longer item's 700 frames, in 128-frame tiles
    assert trimmed_frames(mel, 0, 300) == 1024
    assert trimmed_frames(mel, 1200, 0) == 1280
    assert trimmed_frames(mel, 0, 5000) == 3000
    assert trimmed_frames(torch.zeros(80, 3000), 0, 0) == 0


def encoded_frames(result) -> list[int]:
    """Mel frames each window of a job was encoded over, read from its timing events: the
    first layer's first head has one attention tile per 64 encoder frames (128 mel frames)."""
    tiles: dict[int, int] = {}
    for e in result.events:
        if e.op == "attention" and e.layer == 0 and e.head == 0:
            tiles[e.window] = tiles.get(e.window, 0) + 1
    return [min(3000, 128 * tiles[w]) for w in sorted(tiles)]


def test_short_window_encodes_each_window_over_its_audio() -> None:
    """With short_window, a 5 s clip is encoded over 15 s (the 12 s minimum, in tiles), and
    of a 40 s recording the first window whole and the last over its audio + 3 s; off, every
    window is 30 s. The text stays speech either way."""
    from media import EVAL_DEV

    from npu_whisper_app.audio.decode import load_audio
    from npu_whisper_app.pipeline import Engine, TranscribeOptions

    eng = Engine("tiny.en", "cpu")
    clip = load_audio(EVAL_DEV / "jfk.flac")[: 5 * 16000]
    long = np.concatenate([load_audio(EVAL_DEV / "jfk.flac")] * 4)[: 40 * 16000]
    opts = TranscribeOptions(language="en", temperature=(0.0,), batched=False)
    r = eng.transcribe(clip, opts)
    assert r.text.strip()
    assert encoded_frames(r) == [3000]
    eng.short_window = True
    r = eng.transcribe(clip, opts)
    assert "fellow" in r.text.lower()
    assert encoded_frames(r) == [1280]  # 12 s = 1200 frames -> 10 tiles of 128
    result = eng.transcribe(long, opts)
    seen = encoded_frames(result)
    assert len(seen) >= 2 and seen[0] == 3000 and all(n < 3000 for n in seen[1:]), seen
    assert "country" in result.text.lower()
    r = eng.transcribe(clip, TranscribeOptions(language="en", temperature=(0.0,), word_timestamps=True, batched=False))
    assert r.text
    assert encoded_frames(r)[-1] == 3000  # word timestamps read cross-attention over the full window
    eng.close()


def test_short_window_as_a_job_option() -> None:
    """``TranscribeOptions.short_window`` (the app's checkbox) trims one job's windows."""
    from media import EVAL_DEV

    from npu_whisper_app.audio.decode import load_audio
    from npu_whisper_app.pipeline import Engine, TranscribeOptions

    eng = Engine("tiny.en", "cpu")
    clip = load_audio(EVAL_DEV / "jfk.flac")[: 5 * 16000]
    a = eng.transcribe(clip, TranscribeOptions(language="en", temperature=(0.0,), short_window=True, batched=False))
    b = eng.transcribe(clip, TranscribeOptions(language="en", temperature=(0.0,), batched=False))
    assert encoded_frames(a) + encoded_frames(b) == [1280, 3000]
    assert "short_window" not in TranscribeOptions(short_window=True).whisper_kwargs(False)
    eng.close()


@pytest.mark.parametrize("gelu,with_residual", [(True, False), (False, True), (False, False)])
def test_bf16_gemm_bias_residual_gelu(gelu: bool, with_residual: bool) -> None:
    """The bf16 path (no fp32 temporaries): bf16 x bf16 products, fp32 bias, residual and
    GELU. Against fp64 on the same bf16-rounded inputs, the only other error is the
    product's rounding to bf16 (relative 2^-8 of its size)."""
    import torch.nn.functional as F

    torch.manual_seed(2)
    dev = CpuDevice(Recorder(), precision="bf16")
    w32, b32 = torch.randn(256, 384) * 0.05, torch.randn(384)
    w = dev.prepare_gemm(w32, b32)
    x, r = torch.randn(700, 256), torch.randn(700, 384) * 4
    out = dev.gemm(x, w, op="fc", gelu=gelu, residual=r if with_residual else None)
    prod = x.to(torch.bfloat16).double() @ w32.to(torch.bfloat16).double()
    want = prod + b32.double() + (r.double() if with_residual else 0)
    if gelu:
        want = F.gelu(want)
    assert out.dtype == torch.float32 and out.shape == (700, 384)
    assert (out.double() - want).abs().max().item() <= 2**-8 * prod.abs().max().item() + 1e-5

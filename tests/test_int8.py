"""The cpu device's int8 precision: per-channel int8 weights, per-row int8 activations,
int32 accumulation (oneDNN). Its error stays within what the two roundings allow, the
compiled quantisation/epilogue equal the torch ops they replace, and on real speech it
reads fp32's words (tiny.en, jfk)."""

from __future__ import annotations

import torch
from media import EVAL_DEV

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.devices.cpu import CpuDevice
from npu_whisper_app.pipeline import Engine, TranscribeOptions


def _case(t: int = 300, k: int = 512, n: int = 384, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(t, k, generator=g)
    x[7] *= 40.0  # one loud row must not coarsen the others' steps
    w = torch.randn(k, n, generator=g) * 0.05
    return x, w, torch.randn(n, generator=g), torch.randn(t, n, generator=g)


def test_int8_gemm_error_is_the_roundings() -> None:
    x, w, b, r = _case()
    dev = CpuDevice(precision="int8")
    prepared = dev.prepare_gemm(w, b)
    assert prepared.weight.dtype == torch.int8  # no fp32 copy of the weights is kept
    got = dev.gemm(x, prepared, op="fc", residual=r)
    ref = x @ w + b + r
    # |err| <= half a step of x times sum|w| + half a step of w times sum|x| (+ both), per entry
    sx = x.abs().amax(1, keepdim=True) / 127
    sw = w.abs().amax(0, keepdim=True) / 127
    bound = 0.5 * sx * w.abs().sum(0, keepdim=True) + 0.5 * sw * x.abs().sum(1, keepdim=True) + 0.25 * sx * sw * x.shape[1] + 1e-3
    assert bool(((got - ref).abs() <= bound).all())
    quiet_rows = torch.arange(x.shape[0]) != 7
    assert float((got - ref)[quiet_rows].abs().max()) < 0.05 * float(ref[quiet_rows].abs().max())
    gelu = dev.gemm(x, prepared, op="fc", gelu=True)
    assert torch.allclose(gelu, torch.nn.functional.gelu(got - r), atol=1e-4, rtol=1e-4)


def test_compiled_int8_helpers_equal_the_torch_ops() -> None:
    x, w, b, r = _case(t=129, k=240, n=70, seed=1)
    compiled, plain = CpuDevice(precision="int8"), CpuDevice(precision="int8", native=False)
    assert compiled._int8 is not None and plain._int8 is None
    a = compiled.gemm(x, compiled.prepare_gemm(w, b), op="fc", residual=r)
    p = plain.gemm(x, plain.prepare_gemm(w, b), op="fc", residual=r)
    assert torch.allclose(a, p, rtol=1e-5, atol=1e-4)


def test_int8_reads_fp32s_words() -> None:
    audio = load_audio(EVAL_DEV / "jfk.flac")
    opts = TranscribeOptions(language="en", temperature=(0.0,), batched=False)
    texts = []
    for precision in ("fp32", "int8"):
        engine = Engine("tiny.en", device="cpu", device_options={"precision": precision})
        try:
            texts.append(engine.transcribe(audio, opts).text)
        finally:
            engine.close()
    assert texts[0] == texts[1]
    assert "ask not what your country can do for you" in texts[1].lower()

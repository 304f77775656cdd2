"""The fast decoder's fp16 kernels: built here, the fp32 products of fp16 weights (on
every instruction-set path), cross-attention equal to SDPA, and used only where the
weights are exactly fp16."""

from __future__ import annotations

import platform

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from npu_whisper_app.devices import cpu_native
from npu_whisper_app.model.fast_decoder import F16Linear, FastDecoder, _blocked_f16
from npu_whisper_app.model.resolve import load_whisper_model


@pytest.fixture(scope="module")
def kernel():
    k = cpu_native.load_decoder_kernel()
    assert k is not None, cpu_native.DECODER_F16.status()
    return k


def check_linear(k, rows=(1, 2, 3, 5, 8), shapes=((512, 512), (2048, 512), (512, 2048), (1037, 384))) -> None:
    g = torch.Generator().manual_seed(0)
    for m in rows:
        for n, kk in shapes:
            x = torch.randn(m, kk, generator=g)
            w = (torch.randn(n, kk, generator=g) * 0.05).half()
            b = torch.randn(n, generator=g)
            ref = F.linear(x, w.float(), b)
            got = k.linear_f16(x, w, b)
            assert (got - ref).abs().max() <= 1e-5 * ref.abs().max() + 1e-6, (m, n, kk)
            assert torch.allclose(k.linear_f16(x, w, b, True), F.gelu(ref), atol=1e-5, rtol=1e-5)
            assert torch.allclose(k.linear_f16(x[None], w), F.linear(x, w.float())[None], atol=1e-5, rtol=1e-5)


def test_linear_f16_is_the_fp32_product(kernel) -> None:
    check_linear(kernel)
    with pytest.raises(RuntimeError):
        kernel.linear_f16(torch.randn(9, 512), torch.randn(16, 512).half())  # beams: 1 to 8 rows


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction-set variants")
@pytest.mark.parametrize("march,isa", [("x86-64-v3", "avx2+f16c"), ("x86-64", "scalar")])
def test_linear_f16_on_older_instruction_sets(march: str, isa: str) -> None:
    """The AVX2+F16C and plain C++ paths, built here for an older CPU, give the same products."""
    flags = [f if not f.startswith("-march=") else f"-march={march}" for f in cpu_native.CFLAGS]
    variant = cpu_native.NativeKernel(f"cpu_decoder_f16_{march.replace('-', '_')}", cpu_native.DECODER_F16.source, cflags=flags)
    k = variant.load()
    assert k is not None, variant.status()
    assert k.isa() == isa
    check_linear(k, rows=(1, 4, 8), shapes=((512, 512), (1037, 384)))


def test_cross_attention_f16_equals_sdpa(kernel) -> None:
    if kernel.isa() != "avx512f":
        pytest.skip("the cross-attention kernel is AVX-512 only; the decoder uses SDPA elsewhere")
    g = torch.Generator().manual_seed(1)
    for windows, rows, t in ((1, 1, 1500), (1, 5, 1500), (2, 3, 640), (1, 2, 37)):
        k = torch.randn(windows, 8, t, 64, generator=g).half().float()
        v = torch.randn(windows, 8, t, 64, generator=g).half().float()
        q = torch.randn(windows, rows, 8, 64, generator=g)
        kb, v16, frames = _blocked_f16(k, v)
        got = kernel.cross_attention_f16(q, kb, v16, frames)
        ref = F.scaled_dot_product_attention(q.permute(0, 2, 1, 3), k, v).permute(0, 2, 1, 3)
        assert (got - ref).abs().max() < 1e-5, (windows, rows, t)


def test_fast_decoder_uses_fp16_only_for_exact_weights(kernel) -> None:
    model = load_whisper_model("tiny.en")
    fd = FastDecoder(model, kernel=kernel)
    assert fd.weight_format == "fp16" and isinstance(fd.layers[0].fc1, F16Linear)
    assert fd.cross_fp16 == (kernel.isa() == "avx512f")
    x = torch.randn(1, 1, model.dims.n_text_state)
    ref = x @ model.decoder.token_embedding.weight.T
    assert (fd.logits(x) - ref).abs().max() < 1e-4
    # the prompt's many rows go through the fp32 layer
    many = torch.randn(1, 20, model.dims.n_text_state)
    assert torch.equal(fd.layers[0].fc1(many), model.decoder.blocks[0].mlp[0](many))
    # a fine-tuned fp32 checkpoint would change in fp16: it keeps fp32
    with torch.no_grad():
        model.decoder.blocks[0].mlp[0].weight[0, 0] += 1e-6
    assert FastDecoder(model, kernel=kernel).weight_format == "fp32"


def test_fp16_off_with_the_native_switch(monkeypatch) -> None:
    monkeypatch.setenv("NPU_WHISPER_NATIVE", "0")
    from npu_whisper_app.devices.cpu_native import load_decoder_kernel

    fd = FastDecoder(load_whisper_model("tiny.en"), kernel=load_decoder_kernel())
    assert fd.weight_format == "fp32" and not fd.cross_fp16
    assert isinstance(fd.layers[0].fc1, nn.Linear)

"""The batched mode's int8 decoding (devices/cpu_cross_q8.h, devices/cpu_linear_q8.h):
each kernel computes exactly the products of its int8 numbers (checked against the
dequantised operands), its roundings stay within half a step, and on real speech the
batched mode reads the words it reads with the fp16 decoder. openai-whisper's loop does
not use it (its parity with openai-whisper is tested elsewhere)."""

from __future__ import annotations

import platform

import pytest
import torch
import torch.nn.functional as F
from media import EVAL_DEV
from whisper.normalizers import EnglishTextNormalizer

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.devices import cpu_native
from npu_whisper_app.model.decoder_attention import int8_copies
from npu_whisper_app.pipeline import Engine, TranscribeOptions

GROUP = 64  # activation scale group (cpu_linear_q8.h)


@pytest.fixture(scope="module")
def kernel():
    k = cpu_native.load_decoder_kernel()
    assert k is not None, cpu_native.DECODER_F16.status()
    if k.isa() != "avx512f":
        pytest.skip("the int8 decoder kernels are AVX-512 only (the decoder runs fp32 torch calls there)")
    return k


@pytest.fixture(scope="module")
def q8(kernel):
    if not kernel.has_q8():
        pytest.skip("the int8 products need AVX512-VNNI (the step keeps fp16 products there)")
    return kernel


def unpack(wp: torch.Tensor, n: int) -> torch.Tensor:
    """pack_q8's [N/16][K/4][16][4] int8 back to [N, K]."""
    tiles, k4 = wp.shape[:2]
    return wp.permute(0, 2, 1, 3).reshape(tiles * 16, k4 * 4)[:n].float()


def int8_reference(x: torch.Tensor, wq: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """x quantised per (row, 64-group) as the kernel does, times the int8 weight, in float64."""
    m, k = x.shape
    xg = x.double().view(m, k // GROUP, GROUP)
    amax = xg.abs().amax(-1, keepdim=True)
    inv = torch.where(amax > 0, (127.0 / amax.float()).double(), torch.zeros_like(amax))
    xq = torch.round((xg.float() * inv.float()).double())  # float32 product, as _mm512_mul_ps
    sx = (amax.float() / 127).double()
    y = torch.zeros(m, wq.shape[0], dtype=torch.float64)
    for g in range(k // GROUP):
        y += (xq[:, g] @ wq[:, g * GROUP : (g + 1) * GROUP].double().T) * sx[:, g]
    return y * ws.double()


def test_linear_q8_is_the_product_of_its_int8_numbers(q8) -> None:
    g = torch.Generator().manual_seed(0)
    for n, k in ((512, 512), (2048, 512), (512, 2048), (1037, 512)):
        w = (torch.randn(n, k, generator=g) * 0.05).half()
        wp, ws, gc = q8.pack_q8(w)
        wq = unpack(wp, n)
        # each weight within half a step of its scaled value, one scale per output row
        assert torch.allclose(ws[:n], w.float().abs().amax(1) / 127)
        assert ((wq - w.float() / ws[:n, None]).abs() <= 0.5 + 1e-3).all()
        assert (wq.abs() <= 127).all() and (wp[n // 16 :].numel() == 0 or (unpack(wp, wp.shape[0] * 16)[n:] == 0).all())
        b = torch.randn(n, generator=g)
        for m in (1, 2, 3, 5, 8):
            x = torch.randn(m, k, generator=g)
            x[0, 7] = 40.0  # an outlier spoils only its own group
            ref = int8_reference(x, wq, ws[:n]) + b.double()
            got = q8.linear_q8(x, wp, ws, gc, n, b)
            assert (got.double() - ref).abs().max() <= 1e-5 * ref.abs().max(), (n, k, m)
            assert torch.allclose(q8.linear_q8(x, wp, ws, gc, n, b, True), F.gelu(got), atol=1e-5, rtol=1e-5)
            # and close to the fp32 product: the roundings' error, not a wrong answer
            exact = F.linear(x, w.float(), b)
            assert (got - exact).abs().max() <= 0.03 * exact.abs().max(), (n, k, m)
    with pytest.raises(RuntimeError):
        q8.linear_q8(torch.randn(9, 512), wp, ws, gc, n)  # 1 to 8 rows


def dequantised_keys(kb: torch.Tensor, ks: torch.Tensor, t: int) -> torch.Tensor:
    b, h, blocks = kb.shape[:3]
    k = kb.permute(0, 1, 2, 4, 3).reshape(b, h, blocks * 16, 64).float() * ks[..., None]
    return k[:, :, :t]


def test_cross_attention_q8_is_attention_over_its_int8_keys_and_values(kernel) -> None:
    g = torch.Generator().manual_seed(1)
    for windows, rows, t in ((1, 1, 1500), (2, 3, 640), (1, 8, 37), (8, 1, 300)):
        k = torch.randn(windows, t, 512, generator=g)
        v = torch.randn(windows, t, 512, generator=g)
        q = torch.randn(windows, rows, 8, 64, generator=g)
        kb, ks, v8, vs, frames = int8_copies(kernel, k, v, 8)
        assert frames == t and kb.dtype == torch.int8 and v8.dtype == torch.int8
        kd = dequantised_keys(kb, ks, t)
        vd = v8.float() * vs[..., None]
        kh, vh = (x.view(windows, t, 8, 64).permute(0, 2, 1, 3) for x in (k, v))
        # half a step per number, one scale per (frame, head)
        assert ((kd - kh).abs() <= ks[..., :t, None] / 2 + 1e-6).all()
        assert ((vd - vh).abs() <= vs[..., None] / 2 + 1e-6).all()
        got = kernel.cross_attention_q8(q, kb, ks, v8, vs, frames)
        ref = F.scaled_dot_product_attention(q.permute(0, 2, 1, 3), kd, vd).permute(0, 2, 1, 3)
        assert (got - ref).abs().max() < 1e-5, (windows, rows, t)


def test_windows_of_their_own_lengths_attend_to_their_own_frames(kernel) -> None:
    """The batched mode's windows differ in length (each trimmed to its chunk): with
    ``lengths``, a window's rows attend to its first frames only, as if alone; the fp32
    path (over 8 rows) masks the same frames."""
    from npu_whisper_app.model.decoder_attention import _blocked_f16, cross_attention_fp32

    g = torch.Generator().manual_seed(3)
    t, lengths = 640, torch.tensor([640, 200, 37], dtype=torch.int64)
    k = torch.randn(3, t, 512, generator=g).half().float()
    v = torch.randn(3, t, 512, generator=g).half().float()
    q = torch.randn(3, 2, 8, 64, generator=g)
    heads = [x.view(3, t, 8, 64).permute(0, 2, 1, 3) for x in (k, v)]
    kb, ks, v8, vs, _ = int8_copies(kernel, k, v, 8)
    kb16, v16, _ = _blocked_f16(*heads)
    got8 = kernel.cross_attention_q8(q, kb, ks, v8, vs, t, lengths)
    got16 = kernel.cross_attention_f16(q, kb16, v16, t, lengths)
    fp32 = cross_attention_fp32(q.reshape(3, 2, 512), heads[0], heads[1], 8, 1, lengths).view(3, 2, 8, 64)
    for w, n in enumerate(lengths.tolist()):
        alone8 = kernel.cross_attention_q8(q[w : w + 1], *int8_copies(kernel, k[w : w + 1, :n], v[w : w + 1, :n], 8))
        assert torch.equal(got8[w], alone8[0]), n  # the same numbers as the window alone
        ref = F.scaled_dot_product_attention(q[w : w + 1].permute(0, 2, 1, 3), heads[0][w : w + 1, :, :n], heads[1][w : w + 1, :, :n])
        assert (got16[w] - ref.permute(0, 2, 1, 3)[0]).abs().max() < 1e-5, n
        assert (fp32[w] - ref.permute(0, 2, 1, 3)[0]).abs().max() < 1e-5, n
    with pytest.raises(RuntimeError):
        kernel.cross_attention_q8(q, kb, ks, v8, vs, t, torch.tensor([641, 1, 1]))  # longer than stored


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction-set variants")
def test_without_vnni_the_products_stay_fp16(kernel) -> None:
    """Built for an AVX-512 CPU without VNNI (Skylake-SP): no int8 products (the step keeps
    its fp16 ones), the int8 cross-attention gives this build's numbers."""
    flags = [f if not f.startswith("-march=") else "-march=skylake-avx512" for f in cpu_native.CFLAGS]
    variant = cpu_native.NativeKernel("cpu_decoder_f16_skylake_avx512", cpu_native.DECODER_F16.source, cflags=flags)
    k = variant.load()
    assert k is not None, variant.status()
    assert k.isa() == "avx512f" and not k.has_q8()
    with pytest.raises(RuntimeError, match="VNNI"):
        k.pack_q8(torch.randn(16, 64))
    g = torch.Generator().manual_seed(4)
    q, keys, values = torch.randn(2, 1, 8, 64, generator=g), torch.randn(2, 100, 512, generator=g), torch.randn(2, 100, 512, generator=g)
    copies = int8_copies(k, keys, values, 8)
    assert all(torch.equal(a, b) for a, b in zip(copies[:4], int8_copies(kernel, keys, values, 8)[:4]))
    assert (k.cross_attention_q8(q, *copies) - kernel.cross_attention_q8(q, *copies)).abs().max() < 1e-5


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine("tiny.en", device="cpu")


def test_int8_step_is_close_to_the_fp16_step_and_row_independent(engine: Engine, q8) -> None:
    fd = engine._fast
    assert fd is not None and fd.int8_products
    g = torch.Generator().manual_seed(2)
    rows, frames = 4, 300
    feats = torch.randn(rows, frames, fd.n_state, generator=g) * 0.5
    cache = [(torch.randn(rows, 16, fd.n_state, generator=g), torch.randn(rows, 16, fd.n_state, generator=g)) for _ in fd.layers]
    x = torch.randn(rows, 1, fd.n_state, generator=g)

    def step(int8: bool, live: torch.Tensor | None = None) -> torch.Tensor:
        fd.forget_window()
        fd.cross_kv(feats, int8)
        out = fd.step(x.clone(), [(k.clone(), v.clone()) for k, v in cache], fd.cross16(), 5, 1, live, int8)
        fd.forget_window()
        assert out is not None
        return out

    fp16, int8 = step(False), step(True)
    assert not torch.equal(fp16, int8)  # the int8 path did run
    assert (int8 - fp16).abs().max() <= 0.05 * fp16.abs().max()
    live = torch.tensor([True, False, True, False])
    assert torch.equal(step(True, live)[live], int8[live])  # a row's numbers: its own only


def test_batched_mode_reads_the_fp16_decoders_words(engine: Engine) -> None:
    """jfk and two eval-dev clips in one batch, through the batched mode (int8 decoding
    where the CPU has it) and through the same mode with the fp16 decoder."""
    audio = [load_audio(EVAL_DEV / name) for name in ("jfk.flac", "cards/001.wav", "cards/002.wav")]
    opts = TranscribeOptions(language="en", temperature=(0.0,), batched=True)
    int8 = [r["text"] for r in engine.transcribe_batched_many(audio, opts)]
    make = engine._inference
    engine._inference = lambda ctx, int8=False: make(ctx, False)  # type: ignore[method-assign]
    try:
        fp16 = [r["text"] for r in engine.transcribe_batched_many(audio, opts)]
    finally:
        del engine._inference
    words = EnglishTextNormalizer()
    assert [words(t) for t in int8] == [words(t) for t in fp16]
    assert "ask not what your country can do for you" in words(int8[0])

"""The reference numerics (the NPU kernels' arithmetic) against float64 math."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from npu_whisper_app.devices.bf16 import from_bf16_bits, round_bf16, round_bf16_numpy, to_bf16_bits
from npu_whisper_app.devices.reference import (
    attention_kernel,
    gelu_kernel,
    gelu_tanh,
    gemm_kernel,
    layernorm_kernel,
)

U = 2.0**-8  # bf16 unit roundoff (8 significant bits): relative rounding error <= 2^-8


def exact_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    q, k, v = q.double(), k.double(), v.double()
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v


# -- bf16 ----------------------------------------------------------------------------------


def test_bf16_rounding_is_round_to_nearest_even() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(100_000) * 10.0 ** rng.uniform(-8, 8, 100_000)).astype(np.float32)
    # exact ties: 1 + 2^-8 lies halfway between bf16 neighbours 1 and 1 + 2^-7 -> even (1.0)
    ties = np.array([1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 0.0, -0.0, np.inf, -np.inf], dtype=np.float32)
    x = np.concatenate([x, ties])
    ours = round_bf16(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(ours, round_bf16_numpy(x))
    assert ours[-7] == 1.0 and ours[-6] == 1 + 4 * 2**-8 and ours[-5] == -1.0
    # bits round trip
    np.testing.assert_array_equal(from_bf16_bits(to_bf16_bits(x)).numpy(), ours)
    rel = np.abs(ours[:-7] - x[:-7]) / np.abs(x[:-7])
    assert rel.max() <= U * (1 + 1e-6)


# -- gemm ----------------------------------------------------------------------------------


@pytest.mark.parametrize("m,k,n", [(100, 240, 96), (64, 512, 128), (37, 1536, 50)])
def test_gemm_matches_float64_within_bf16(m: int, k: int, n: int) -> None:
    g = torch.Generator().manual_seed(m + k + n)
    a = torch.randn(m, k, generator=g)
    b = torch.randn(k, n, generator=g) / math.sqrt(k)
    bias = torch.randn(n, generator=g)
    got = gemm_kernel(a, b, bias)
    exact = a.double() @ b.double() + bias.double()
    bound = (a.double().abs() @ b.double().abs()) * (2 * U + U * U) + 1e-5
    assert ((got.double() - exact).abs() <= bound).all()
    # bf16 inputs really are rounded: against fp64 of the rounded inputs it is fp32-close
    exact16 = round_bf16(a).double() @ round_bf16(b).double() + bias.double()
    assert (got.double() - exact16).abs().max() < 1e-4
    assert (got.double() - exact).abs().max() > 10 * (got.double() - exact16).abs().max()


def test_gemm_padding_changes_nothing_and_gelu_is_fused() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(70, 240, generator=g)
    b = torch.randn(240, 100, generator=g) * 0.1
    bias = torch.randn(100, generator=g)
    y = gemm_kernel(a, b, bias, gelu=True)
    ap = F.pad(a, (0, 16, 0, 186))  # M 70 -> 256, K 240 -> 256
    bp = F.pad(b, (0, 28, 0, 16))  # K -> 256, N 100 -> 128
    yp = gemm_kernel(ap, bp, F.pad(bias, (0, 28)), gelu=True)
    assert torch.equal(yp[:70, :100], y)
    exact = F.gelu(a.double() @ b.double() + bias.double())  # exact (erf) GELU
    assert (y.double() - exact).abs().max() < 0.05


def test_gelu_tanh_form_close_to_exact() -> None:
    x = torch.linspace(-8, 8, 10001)
    assert (gelu_tanh(x) - F.gelu(x)).abs().max() < 1e-3
    y = gelu_kernel(x)
    assert torch.equal(y, round_bf16(y))
    assert ((y - F.gelu(x)).abs() <= 1e-3 + x.abs() * 3 * U).all()


def test_layernorm_matches_float64() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 512, generator=g) * 3 + 1
    gamma = torch.rand(512, generator=g) + 0.5
    beta = torch.randn(512, generator=g)
    y = layernorm_kernel(x, gamma, beta, 1e-5)
    assert torch.equal(y, round_bf16(y))  # bf16 output
    exact = F.layer_norm(x.double(), (512,), gamma.double(), beta.double(), 1e-5)
    assert (y.double() - exact).abs().max() < 4 * U * exact.abs().max()


# -- attention -----------------------------------------------------------------------------


@pytest.mark.parametrize("t", [64, 150, 1500])
def test_attention_matches_float64_over_all_keys(t: int) -> None:
    g = torch.Generator().manual_seed(t)
    h, d = 2, 64
    q, k, v = (torch.randn(h, t, d, generator=g) for _ in range(3))
    q = q * 2.0  # peaky softmax: errors in the scale or masking would show
    tp = -(-t // 64) * 64
    # padded keys/values hold garbage: the mask must hide them
    kp = torch.cat([k, torch.full((h, tp - t, d), 50.0)], 1)
    vp = torch.cat([v, torch.full((h, tp - t, d), 1e4)], 1)
    outs = []
    for s in range(0, t, 64):  # one dispatch per (head, query tile), all heads at once
        qt = F.pad(q[:, s : s + 64], (0, 0, 0, 64 - q[:, s : s + 64].shape[1]))
        outs.append(attention_kernel(qt, kp, vp, valid_keys=t)[:, : min(64, t - s)])
    got = torch.cat(outs, 1)
    exact = exact_attention(q, k, v)
    err = (got.double() - exact).abs().max().item()
    assert err < 2e-2, err
    # the test discriminates: a wrong scale (1/16) or block-diagonal attention is far off
    wrong_scale = exact_attention(q, k, v, scale=1 / 16)
    assert (wrong_scale - exact).abs().max().item() > 10 * err
    blocks = torch.cat(
        [exact_attention(q[:, s : s + 64], k[:, s : s + 64], v[:, s : s + 64]) for s in range(0, t, 64)], 1
    )
    if t > 64:
        assert (blocks - exact).abs().max().item() > 10 * err


def test_attention_query_tile_sees_a_far_key_tile() -> None:
    """Query tile 0 must find its match in key tile 20 (block-diagonal attention would not)."""
    t, d = 1500, 64
    g = torch.Generator().manual_seed(5)
    q = torch.randn(1, t, d, generator=g) * 0.1
    k = torch.randn(1, t, d, generator=g) * 0.1
    v = torch.zeros(1, t, d)
    target = 20 * 64 + 7
    k[0, target] = q[0, 3] / q[0, 3].norm() ** 2 * 200  # score 25  # query row 3 <-> key 1287 (tile 20)
    v[0, target] = 1.0
    kp = F.pad(k, (0, 0, 0, 36))
    vp = F.pad(v, (0, 0, 0, 36))
    out = attention_kernel(q[:, :64], kp, vp, valid_keys=t)
    assert out[0, 3].min() > 0.9  # found the far key
    assert out[0, 4].abs().max() < 0.1


def test_attention_batched_equals_per_tile() -> None:
    g = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(3, 192, 64, generator=g) for _ in range(3))
    batched = attention_kernel(q.view(3, 3, 64, 64), k[:, None], v[:, None], valid_keys=150)
    for h in range(3):
        for ti in range(3):
            single = attention_kernel(q[h, ti * 64 : (ti + 1) * 64], k[h], v[h], valid_keys=150)
            assert torch.equal(single, batched[h, ti])

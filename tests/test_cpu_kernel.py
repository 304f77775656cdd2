"""The cpu device's compiled attention kernel: built here, same numbers and same dispatch
events as the Python tiles, tile times on the recorder's clock, and a clean fallback."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

from npu_whisper_app.devices import cpu_native
from npu_whisper_app.devices.cpu import CpuDevice
from npu_whisper_app.devices.cpuinfo import cpu_flags
from npu_whisper_app.profiling import Recorder


def sdpa_reference(qkv: torch.Tensor, n_head: int) -> torch.Tensor:
    t, three_d = qkv.shape
    d = three_d // 3 // n_head
    split = qkv.view(t, 3, n_head, d).permute(1, 2, 0, 3)
    return F.scaled_dot_product_attention(split[0], split[1], split[2]).permute(1, 0, 2).reshape(t, n_head * d)


def test_kernel_builds_on_this_machine() -> None:
    """set-up installs g++ and ninja: the kernel must build here (CI included), not fall back."""
    assert cpu_native.load_attention_kernel() is not None, cpu_native.kernel_status()
    assert cpu_native.kernel_status().startswith("compiled")
    assert CpuDevice.probe().details["attention_kernel"].startswith("compiled")


@pytest.mark.parametrize("t,n_head,d", [(1500, 8, 64), (1500, 6, 64), (130, 2, 32), (64, 1, 64)])
def test_compiled_attention_matches_sdpa_and_python_tiles(t: int, n_head: int, d: int) -> None:
    torch.manual_seed(t + n_head)
    qkv = torch.randn(t, 3 * n_head * d) * 2
    fast = CpuDevice(Recorder(), precision="fp32")
    slow = CpuDevice(Recorder(), precision="fp32", native=False)
    assert fast._kernel is not None and slow._kernel is None
    a = fast.attention_qkv(qkv, n_head)
    b = slow.attention_qkv(qkv, n_head)
    ref = sdpa_reference(qkv, n_head)
    assert (a - ref).abs().max().item() < 2e-5
    assert (a - b).abs().max().item() < 2e-5


def _cpu_has_avx512() -> bool:
    with open("/proc/cpuinfo") as fh:
        return any(line.startswith("flags") and " avx512f" in line for line in fh)


@pytest.mark.parametrize("use_fused", [True, False], ids=["avx512-loops", "blas"])
@pytest.mark.parametrize("t,spread", [(1500, 2.0), (640, 2.0), (1, 1.0), (37, 1.0), (1500, 25.0)])
def test_both_kernel_paths_match_sdpa(use_fused: bool, t: int, spread: float) -> None:
    """The AVX-512 loops (head width 64) and the BLAS path, called directly: any frame
    count (a tail of keys past the last 16 and 64, a last query tile under 6 rows) and
    scores spread far enough that most of exp() underflows."""
    kernel = cpu_native.load_attention_kernel()
    assert kernel is not None
    if use_fused:
        assert kernel.has_fused() == _cpu_has_avx512()  # built for this CPU: the loops exist where it can run them
    n_head, d = 3, 64
    torch.manual_seed(t)
    qkv = torch.randn(t, 3 * n_head * d) * spread
    out = torch.empty(t, n_head * d)
    times = torch.empty(n_head, 1 + math.ceil(t / 64), 2, dtype=torch.int64)
    kernel.attention(qkv, n_head, 64, 0, out, times, use_fused)
    exact = sdpa_reference(qkv.double(), n_head)
    # as close to the float64 result as torch's own float32 SDPA is (wide spreads round more)
    sdpa_err = (sdpa_reference(qkv, n_head) - exact).abs().max().item()
    assert (out - exact).abs().max().item() <= max(2e-5, 1.5 * sdpa_err)


BF16_U = 2.0**-9  # bf16's unit roundoff: 8 significand bits, round to nearest even


@pytest.mark.parametrize("t,spread", [(1500, 2.0), (1499, 2.0), (640, 2.0), (257, 4.0), (256, 2.0), (65, 2.0), (64, 1.0), (37, 1.0), (3, 1.0), (2, 1.0), (1, 1.0), (1500, 25.0), (333, 8.0)])
def test_bf16_kernel_path_matches_sdpa(t: int, spread: float) -> None:
    """The bf16 products (vdpbf16ps; precision bf16 on CPUs with AVX512_BF16), called
    directly, against float64 SDPA, over 1..1500 frames (odd counts: a last key pair of one
    key; tails past 16 and 64 keys and past the online softmax's 256-key chunks, down to one
    key; last query tiles under 6 rows; wide spreads, where a later chunk raises the max).

    The kernel rounds q/8, K and V to bf16 (round to nearest even) and p = exp(s - max) to
    bf16, and does the rest in fp32. So against float64 SDPA of the *rounded* inputs the only
    bf16 error left is p's: each weight p_k(1+d_k)/sum_j p_j(1+d_j), |d| <= u = 2^-9, moves
    by at most 2u/(1-u) of itself, and since the weights still sum to 1 an output column moves
    by at most u/(1-u) * (max_k v_kc - min_k v_kc). Tolerance: that, plus fp32's share (the
    fp32 kernel's own 2e-5, scaled by the values' size). Against the exact inputs it is that plus
    what rounding the inputs to bf16 does to float64 SDPA itself (measured here)."""
    kernel = cpu_native.load_attention_kernel()
    assert kernel is not None
    flags = set(cpu_flags())
    assert kernel.has_bf16() == ("avx512_bf16" in flags and "avx512f" in flags)
    if not kernel.has_bf16():
        pytest.skip("this CPU has no AVX512_BF16: precision bf16 keeps the fp32 attention kernel")
    n_head, d = 3, 64
    torch.manual_seed(1000 + t)
    qkv = torch.randn(t, 3 * n_head * d) * spread
    out = torch.empty(t, n_head * d)
    times = torch.empty(n_head, 1 + math.ceil(t / 64), 2, dtype=torch.int64)
    kernel.attention(qkv, n_head, 64, 0, out, times, True, True)
    assert torch.isfinite(out).all()
    assert (times[..., 0] > 0).all() and (times[..., 1] >= times[..., 0]).all()
    exact = sdpa_reference(qkv.double(), n_head)
    rounded = sdpa_reference(qkv.bfloat16().double(), n_head)  # the kernel's inputs, exactly
    v = qkv.bfloat16().double().view(t, 3, n_head, d)[:, 2].reshape(t, n_head * d)
    p_bound = BF16_U / (1 - BF16_U) * (v.amax(0) - v.amin(0))  # per output column
    fp32_slack = 2e-5 * max(1.0, v.abs().max().item())
    err_rounded = (out.double() - rounded).abs()
    assert (err_rounded <= p_bound + fp32_slack).all(), (err_rounded.max().item(), p_bound.max().item())
    input_err = (rounded - exact).abs()
    err = (out.double() - exact).abs()
    assert (err <= input_err + p_bound + fp32_slack).all(), (err.max().item(), input_err.max().item())
    # and far closer than the worst case: the rounding errors are not all of one sign
    assert err.max().item() <= input_err.max().item() + 0.5 * p_bound.max().item() + fp32_slack


def test_bf16_device_uses_the_bf16_kernel_path() -> None:
    """precision bf16 runs attention's products in bf16 where the CPU has AVX512_BF16 (fp32
    elsewhere, and always at fp32): same events, numbers within bf16's reach of fp32's."""
    kernel = cpu_native.load_attention_kernel()
    assert kernel is not None
    bf16 = CpuDevice(Recorder(), precision="bf16")
    assert bf16.attention_bf16 == bool(kernel.has_bf16()) == CpuDevice.probe().details["attention_bf16"]
    assert not CpuDevice(Recorder(), precision="fp32").attention_bf16
    assert not CpuDevice(Recorder(), precision="bf16", native=False).attention_bf16
    torch.manual_seed(5)
    qkv = torch.randn(1500, 3 * 4 * 64)
    a = bf16.attention_qkv(qkv, 4)
    ref = sdpa_reference(qkv, 4)
    err = (a - ref).abs().max().item()
    if bf16.attention_bf16:
        assert 1e-4 < err < 0.02, err  # bf16's rounding shows, and stays small
    else:
        assert err < 2e-5


def test_compiled_attention_sees_all_frames() -> None:
    """A key far outside the query's own tile must change the result, as in the contract test."""
    t, d = 1500, 64
    qkv = torch.zeros(t, 3 * d)
    qkv[:64, 0] = 1.0  # queries of tile 0
    qkv[1400, d] = 50.0  # only key 1400 matches them
    qkv[1400, 2 * d :] = 3.0
    out = CpuDevice(Recorder(), precision="fp32").attention_qkv(qkv, 1)
    expected = 3.0 * math.exp(6.25) / (math.exp(6.25) + 1499)
    assert abs(out[0, 0].item() - expected) < 1e-4


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_tiles_are_real_dispatch_events(precision: str) -> None:
    t, n_head, d = 1500, 4, 64
    rec = Recorder()
    dev = CpuDevice(rec, precision=precision)
    before = time.perf_counter_ns()
    dev.attention_qkv(torch.randn(t, 3 * n_head * d), n_head)
    after = time.perf_counter_ns()
    rec.flush()
    tiles = math.ceil(t / 64)
    attn = [e for e in rec.events if e.op == "attention"]
    io = [e for e in rec.events if e.op == "attention_io"]
    assert sorted((e.head, e.tile) for e in attn) == [(h, i) for h in range(n_head) for i in range(tiles)]
    assert sorted(e.head for e in io) == list(range(n_head)) and all(e.tile is None for e in io)
    # read inside the kernel from CLOCK_MONOTONIC: on the same time line as perf_counter_ns
    for e in attn + io:
        assert before <= e.start_ns <= e.end_ns <= after
    # every tile of a head runs after that head's K/V copy
    for h in range(n_head):
        copy = next(e for e in io if e.head == h)
        assert all(copy.end_ns <= e.start_ns for e in attn if e.head == h)
    assert all(e.flops == (64 if e.tile < tiles - 1 else t - 64 * (tiles - 1)) * 4 * t * d for e in attn)


def test_switched_off_by_environment(monkeypatch) -> None:
    monkeypatch.setenv("NPU_WHISPER_NATIVE", "0")
    assert cpu_native.load_attention_kernel() is None
    assert cpu_native.kernel_status().startswith("off")
    dev = CpuDevice(Recorder())
    assert dev._kernel is None


def test_failed_build_falls_back_and_says_why(monkeypatch, tmp_path) -> None:
    bad = tmp_path / "cpu_attention.cpp"
    bad.write_text("#include <torch/extension.h>\nthis is not C++;\n")
    broken = cpu_native.NativeKernel("cpu_attention", bad, cpu_native._needs_blas)
    monkeypatch.setattr(broken, "build_dir", lambda: tmp_path / "build")
    monkeypatch.setattr(cpu_native, "ATTENTION", broken)
    assert cpu_native.load_attention_kernel() is None
    assert cpu_native.kernel_status().startswith("not built:")
    rec = Recorder()
    dev = CpuDevice(rec, precision="fp32")
    assert dev._kernel is None
    qkv = torch.randn(200, 3 * 2 * 64)
    assert (dev.attention_qkv(qkv, 2) - sdpa_reference(qkv, 2)).abs().max().item() < 2e-5

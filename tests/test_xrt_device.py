"""The xrt device end to end through the pyxrt stand-in (tests/standin/pyxrt.py), which moves
data by the designs' own access patterns and admits contexts by the amdxdna driver's rules."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import stat
import sys

import numpy as np
import pytest
import torch
from standin.support import install, random_encoder, random_mel

from npu_whisper_app.devices import create_device, probe
from npu_whisper_app.devices import xrt as xrt_mod
from npu_whisper_app.devices.base import DeviceUnavailable, KernelError
from npu_whisper_app.devices.cpu import CpuDevice
from npu_whisper_app.devices.reference import ReferenceDevice
from npu_whisper_app.devices.xrt import XrtDevice, npu_generation, parse_xrt_smi
from npu_whisper_app.devices.xrt_timing import MHA_MAGIC, clock_from_platform, parse_counter_rows
from npu_whisper_app.model.encoder import TiledEncoder
from npu_whisper_app.profiling import Recorder

# small but shaped like Whisper: 150 frames = 2 full query tiles + a partial one of 22 (padded to 256)
SMALL = (80, 150, 256, 4)  # n_mels, n_ctx, d, heads (Dh = 64)
N_Q = 3
ATTN = "attention_h4_t256_v150"


@pytest.fixture
def pyxrt(monkeypatch, tmp_path):
    return install(monkeypatch, tmp_path, SMALL)


def encoder_on(device, layers: int = 2, fallback=None, on_fallback=None, seed: int = 0):
    n_mels, n_ctx, d, h = SMALL
    return TiledEncoder(random_encoder(n_mels, n_ctx, d, h, layers, seed), h, device, fallback, on_fallback)


def runs(pyxrt) -> int:
    return sum(pyxrt.stats.runs.values())


# -- discovery -------------------------------------------------------------------------


def test_probe_reasons(pyxrt, monkeypatch, tmp_path) -> None:
    info = probe("xrt")
    assert info.available, info.reason
    d = info.details
    assert d["generation"] == "npu1" and d["kernels_built_for"] == ["npu1"] and d["accel"]
    assert d["xclbins"] == 3 and d["kernels"] == 8  # 3 families, 8 shapes (6 gemm, attention, layernorm)
    assert d["aie_clock_mhz"] == 1600

    monkeypatch.setitem(sys.modules, "pyxrt", None)
    info = probe("xrt")
    assert not info.available and "pyxrt is not importable" in info.reason
    monkeypatch.setitem(sys.modules, "pyxrt", pyxrt)

    monkeypatch.setenv("NPU_WHISPER_ACCEL_DIR", str(tmp_path / "none"))
    info = probe("xrt")
    assert not info.available and "no NPU device node" in info.reason
    monkeypatch.setenv("NPU_WHISPER_ACCEL_DIR", str(tmp_path / "accel"))

    pyxrt.DEVICES = 0
    info = probe("xrt")
    assert not info.available and "cannot open NPU device 0" in info.reason
    with pytest.raises(DeviceUnavailable, match="unavailable: cannot open NPU device 0"):
        create_device("xrt")
    pyxrt.DEVICES = 1

    monkeypatch.setenv("NPU_WHISPER_KERNELS", str(tmp_path / "empty"))
    info = probe("xrt")
    assert not info.available and "NPU kernels not built" in info.reason and "make -C kernels" in info.reason
    monkeypatch.setenv("NPU_WHISPER_KERNELS", str(tmp_path / "build"))
    os.remove(tmp_path / "build" / f"{ATTN}.insts.bin")
    info = probe("xrt")
    assert not info.available and f"{ATTN}.insts.bin" in info.reason


def test_generation_comes_from_the_driver_and_must_match_the_build(pyxrt) -> None:
    assert npu_generation("RyzenAI-npu1") == "npu1" and npu_generation("RyzenAI-npu4") == "npu2"
    assert npu_generation("NPU Strix") == "npu2" and npu_generation("something else") is None
    pyxrt.NAME = "RyzenAI-npu4"  # a Strix NPU; the build is npu1 only
    info = probe("xrt")
    assert not info.available and info.details["generation"] == "npu2"
    assert "is npu2; kernels are built for npu1" in info.reason
    with pytest.raises(DeviceUnavailable, match="built for npu1"):
        XrtDevice()


XRT_SMI_SAMPLE = """\
System Configuration
  OS Name              : Linux
  Release              : 6.11.0-19-generic
XRT
  Version              : 2.19.0
  Branch               : 2025.1
  amdxdna Version      : 2.19.0_20250206, 6c8e9f3d
  NPU Firmware Version : 1.5.5.391
Device(s) Present
|BDF             |Name          |
|----------------|--------------|
|[0000:c5:00.1]  |NPU Phoenix   |
"""


def test_xrt_smi_versions_in_probe_details(pyxrt, monkeypatch, tmp_path) -> None:
    parsed = parse_xrt_smi(XRT_SMI_SAMPLE)
    assert parsed["NPU Firmware Version"] == "1.5.5.391"
    assert parsed["amdxdna Version"].startswith("2.19.0")
    assert parsed["devices"] == [{"bdf": "0000:c5:00.1", "name": "NPU Phoenix"}]
    bindir = tmp_path / "nobin"
    bindir.mkdir()
    tool = bindir / "xrt-smi"
    (tmp_path / "smi.txt").write_text(XRT_SMI_SAMPLE)
    tool.write_text(f"#!/bin/sh\nexec /bin/cat {tmp_path / 'smi.txt'}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setitem(sys.modules, "pyxrt", None)
    info = probe("xrt")  # versions are reported even when the device is unusable
    assert not info.available
    assert info.details["NPU Firmware Version"] == "1.5.5.391"
    assert info.details["Version"] == "2.19.0"


# -- numerics through the designs' data movement -------------------------------------------


def test_encoder_on_xrt_equals_reference_device(pyxrt) -> None:
    mel = random_mel(80, 150)
    xrt_out = encoder_on(XrtDevice())(mel)
    ref_out = encoder_on(ReferenceDevice())(mel)
    assert torch.equal(xrt_out, ref_out)  # the taps deliver exactly the operands the arithmetic needs
    cpu_out = encoder_on(CpuDevice(precision="fp32"))(mel)
    err = (xrt_out - cpu_out).abs().max().item()
    scale = cpu_out.abs().max().item()
    assert 1e-4 < err < 0.02 * scale, (err, scale)  # bf16 numerics: close, but not fp32


def test_reference_device_per_tile_equals_batched() -> None:
    mel = random_mel(80, 150)
    a = encoder_on(ReferenceDevice(per_tile=True), layers=1)(mel)
    b = encoder_on(ReferenceDevice(), layers=1)(mel)
    assert torch.equal(a, b)


def qkv_of(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``[T][q|k|v][H][d]``: the layout the qkv gemm writes and the attention design reads."""
    h, t, d = q.shape
    return torch.cat([z.permute(1, 0, 2).reshape(t, h * d) for z in (q, k, v)], dim=1)


def test_a_host_layout_that_disagrees_with_the_design_gives_wrong_numbers(pyxrt, monkeypatch) -> None:
    """The stand-in moves data by the design's access patterns, so a host packing with one
    stride changed (here: q/k/v interleaved per head, head stride 3d instead of d) is caught."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(4, 150, 64, generator=g) for _ in range(3))
    want = ReferenceDevice().attention(q, k, v).permute(1, 0, 2).reshape(150, 256)
    dev = XrtDevice()
    right = dev.attention_qkv(qkv_of(q, k, v), 4)
    assert torch.equal(right, want)
    per_head = torch.stack([q, k, v], dim=2).permute(1, 0, 2, 3).reshape(150, 3 * 256)  # [T][H][q|k|v][d]
    wrong = dev.attention_qkv(per_head, 4)
    assert (wrong - want).abs().max().item() > 0.5

    # the gemm: B tiles written [n][k] instead of [k][n] (a swapped stride) -> wrong products
    w, b, x = torch.randn(256, 256, generator=g), torch.randn(256, generator=g), torch.randn(150, 256, generator=g)
    expect = ReferenceDevice().gemm(x, ReferenceDevice().prepare_gemm(w, b), op="t")
    assert torch.equal(dev.gemm(x, dev.prepare_gemm(w, b), op="t"), expect)
    good_tile = xrt_mod.tile_weight

    def transposed_tiles(wt, bias, kp, np_, slots):
        out = good_tile(wt, bias, kp, np_, slots).reshape(np_ // 32, kp // 64 + 1, 64, 32)
        out[:, :-1] = np.ascontiguousarray(out[:, :-1].swapaxes(-1, -2)).reshape(np_ // 32, kp // 64, 64, 32)  # [n][k]
        return out.reshape(-1)

    monkeypatch.setattr(xrt_mod, "tile_weight", transposed_tiles)
    assert (dev.gemm(x, dev.prepare_gemm(w, b), op="t") - expect).abs().max().item() > 1.0
    # the bias where the *source* block's first 2n slots are (ignoring the memtile's dims_to_stream):
    monkeypatch.setattr(xrt_mod, "tile_weight", lambda wt, bias, kp, np_, slots: good_tile(wt, bias, kp, np_, np.arange(64)))
    y = dev.gemm(x, dev.prepare_gemm(w, b), op="t")
    assert (y - expect).abs().max().item() > 0.1 and torch.allclose(y - expect, (y - expect)[0].expand_as(y), atol=1e-3)


def test_unbalanced_design_hangs_and_times_out(pyxrt, tmp_path) -> None:
    """A stream and a core loop that disagree (the manifest's loop count edited) deadlock on
    the array: the run never completes and wait() times out."""
    path = tmp_path / "build" / "manifest.json"
    data = json.loads(path.read_text())
    for e in data["kernels"]:
        if e["kind"] == "layernorm":
            for v in e["rtps"].values():
                v[1] += 1  # one more step than the runtime sequence delivers
    path.write_text(json.dumps(data))
    dev = XrtDevice(timeout_ms=300)
    norm = dev.prepare_norm(torch.ones(256), torch.zeros(256))
    with pytest.raises(KernelError, match=r"layernorm_256x256 did not finish within 300 ms \(ERT_CMD_STATE_TIMEOUT\)"):
        dev.layernorm(torch.randn(150, 256), norm, op="ln")


# -- runs, contexts, buffers ---------------------------------------------------------------


def test_runs_contexts_buffers_and_syncs_per_window(pyxrt) -> None:
    rec = Recorder()
    dev = XrtDevice(rec)
    enc = encoder_on(dev)
    assert pyxrt.stats.contexts_open == 3 == dev.contexts  # all three opened at weight load
    allocs_after_load = pyxrt.stats.bo_allocs
    weight_bytes = pyxrt.stats.bytes_to_device
    sent, window_runs = [], []
    for seed in (1, 2, 3):
        before, runs_before = pyxrt.stats.bytes_to_device, runs(pyxrt)
        enc(random_mel(80, 150, seed=seed))
        sent.append(pyxrt.stats.bytes_to_device - before)
        window_runs.append(runs(pyxrt) - runs_before)
        if seed == 1:
            allocs_after_1 = pyxrt.stats.bo_allocs
    assert window_runs == [2 + 2 * 7 + 1] * 3  # conv1, conv2; ln1 qkv attention out ln2 fc1 fc2 per layer; ln_post
    assert pyxrt.stats.runs_by_kind["attention"] == 3 * 2  # ONE per layer: every head and query tile
    assert pyxrt.stats.bo_allocs == allocs_after_1 > allocs_after_load  # activation buffers reused
    # window 1 also uploads the instruction streams; after that only activation rows, never weights
    assert sent[1] == sent[2] < sent[0] < weight_bytes
    t, d, bf16 = 150, 256, 2
    conv = (2 * t * 256 + t * 3 * d) * bf16  # conv1 (K 240 -> 256), conv2: only the rows written
    per_layer = (5 * t * d + t * 4 * d + t * 3 * d) * bf16  # ln1 qkv out ln2 fc1 inputs; fc2 input; packed qkv
    assert sent[1] == conv + 2 * per_layer + t * d * bf16  # + ln_post
    assert pyxrt.stats.contexts_peak == 3 and pyxrt.stats.contexts_refused == 0
    for window in range(3):
        for layer in range(2):
            evs = [e for e in rec.events if e.window == window and e.layer == layer and e.op == "attention"]
            assert sorted((e.head, e.tile) for e in evs) == [(h, t) for h in range(4) for t in range(N_Q)]
            assert all(e.device == "xrt" for e in evs)


def test_at_most_three_contexts_and_the_driver_admits_them(pyxrt) -> None:
    """Replaces the old ">= 7 contexts" test: one context per kernel family, all 4 columns wide;
    by the driver's solver the 2nd and 3rd share the 1st's partition (start column 1 on npu1)."""
    dev = XrtDevice()
    enc = encoder_on(dev)
    enc(random_mel(80, 150))
    assert pyxrt.stats.contexts == pyxrt.stats.contexts_open == 3
    assert pyxrt.stats.placements == [(1, 4)] * 3
    dev.close()  # e.g. when the encoder falls back to cpu: the contexts go back to the driver
    gc.collect()
    assert pyxrt.stats.contexts_open == 0


@pytest.mark.parametrize("others, why", [([4, 4, 4, 4], "allows 6 hardware contexts"),
                                         ([1, 2], "no free 4-column range")])
def test_context_refused_by_the_driver(pyxrt, others, why) -> None:
    """Other processes hold contexts: 4 more (our 3rd is the 7th on npu1), or columns 1-3
    (1 + 2 wide: no free 4-column range, nothing 4 wide to share)."""
    pyxrt.OTHER_CONTEXTS[:] = others
    with pytest.raises(DeviceUnavailable, match=rf"driver refused a hardware context .*{why}"):
        encoder_on(XrtDevice())
    assert pyxrt.stats.contexts_refused == 1


@pytest.mark.parametrize("model, dims, layers, expect", [("tiny.en", (80, 1500, 384, 6), 4, 31),
                                                         ("base", (80, 1500, 512, 8), 6, 45)])
def test_runs_per_window_for_real_model_shapes(monkeypatch, tmp_path, model, dims, layers, expect) -> None:
    pyxrt = install(monkeypatch, tmp_path, dims)
    pyxrt.NUMERICS = False  # counting only (the numerics of these shapes are tested elsewhere)
    n_mels, n_ctx, d, h = dims
    enc = TiledEncoder(random_encoder(n_mels, n_ctx, d, h, layers), h, XrtDevice())
    enc(random_mel(n_mels, n_ctx))
    assert runs(pyxrt) == expect <= 64
    assert pyxrt.stats.contexts_peak == 3 and pyxrt.stats.contexts_refused == 0


# -- per-tile times from the NPU's clock ---------------------------------------------------


def test_attention_tile_times_come_from_the_cores_counters(pyxrt) -> None:
    pyxrt.CLOCKS_MHZ = {"MP-NPU Clock": 800, "H Clock": 1000}  # 1 cycle = 1 ns
    rec = Recorder()
    dev = XrtDevice(rec)
    assert (dev.clock_hz, dev.clock_source) == (1e9, "H Clock")
    enc = encoder_on(dev, layers=1)
    enc(random_mel(80, 150))
    evs = [e for e in rec.events if e.op == "attention"]
    steps = 3  # key tiles of 150 keys
    base = pyxrt.ATTN_TILE_OVERHEAD + steps * pyxrt.ATTN_STEP_CYCLES
    for e in evs:  # column = head % 4, row = 2 + tile % 4 (attention.py's work split)
        assert e.core == (e.head % 4, 2 + e.tile % 4)
        assert e.duration_ns - base in {97 * j for j in range(5)}  # the counter difference, in ns at 1 GHz
    pyxrt.CLOCKS_MHZ = {"H Clock": 2000}
    rec2 = Recorder()
    encoder_on(XrtDevice(rec2), layers=1)(random_mel(80, 150))
    d1 = sorted((e.head, e.tile, e.duration_ns) for e in evs)
    d2 = sorted((e.head, e.tile, e.duration_ns) for e in rec2.events if e.op == "attention")
    assert [b[2] for b in d2] == [round(a[2] / 2) for a in d1]  # same cycles, twice the clock


def test_counter_rows_and_clock_parsing() -> None:
    rows = np.zeros((2, 3, 64), np.uint16)
    w = rows.view(np.uint32).reshape(2, 3, 32)
    w[..., 0], w[..., 2], w[..., 4], w[..., 5], w[..., 6] = 10, 2**32 - 1, 3, 5, MHA_MAGIC
    w[1, 2, 3] = 1  # end >= 2^32: the high word counts
    t = parse_counter_rows(rows)
    assert len(t) == 6 and t[0].cycles == 2**32 - 11 and (t[0].col, t[0].row) == (3, 5)
    assert t[5].end_cycles == 2**33 - 1
    w[1, 1, 6] = 0
    with pytest.raises(ValueError, match="head 1, tile 1 has no MHA1 marker"):
        parse_counter_rows(rows)
    js = json.dumps({"platforms": [{"clocks": [{"id": "MP-NPU Clock", "freq_mhz": "1267"}, {"id": "H Clock", "freq_mhz": "1024"}]}]})
    assert clock_from_platform(js) == (1024e6, "H Clock")
    assert clock_from_platform("{}") is None and clock_from_platform("not json") is None


# -- failures --------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["ERT_CMD_STATE_ERROR", "ERT_CMD_STATE_ABORT"])
def test_failed_run_raises_kernel_error_naming_kernel_and_state(pyxrt, state) -> None:
    pyxrt.fail("attention", at=2, state=state)
    enc = encoder_on(XrtDevice())
    with pytest.raises(KernelError, match=rf"{ATTN} ended in {state}"):
        enc(random_mel(80, 150))


def test_a_hung_run_times_out(pyxrt) -> None:
    pyxrt.fail("attention", at=1, state="HANG")
    enc = encoder_on(XrtDevice(timeout_ms=200))
    with pytest.raises(KernelError, match=rf"{ATTN} did not finish within 200 ms \(ERT_CMD_STATE_TIMEOUT\)"):
        enc(random_mel(80, 150))


def test_run_returns_while_in_flight(pyxrt) -> None:
    """start() only submits: behind a hung command on the same context, a second one stays queued."""
    dev = XrtDevice()
    norm = dev.prepare_norm(torch.ones(256), torch.zeros(256))
    fam = dev._family("layernorm_n256.xclbin")
    entry = fam.entries[0]
    instr, n = fam.stream(entry)
    x, y = fam.act(entry, "x"), fam.act(entry, "y")
    pyxrt.fail("layernorm", at=1, state="HANG")
    r1 = fam.kernel(3, instr, n, x, norm.p, y)
    r2 = fam.kernel(3, instr, n, x, norm.p, y)
    assert r1.wait(50) == pyxrt.ert_cmd_state.ERT_CMD_STATE_TIMEOUT
    assert r2.wait(50) == pyxrt.ert_cmd_state.ERT_CMD_STATE_TIMEOUT
    assert r2.state() == pyxrt.ert_cmd_state.ERT_CMD_STATE_SUBMITTED
    fam3 = XrtDevice()  # another context: its own queue is free
    norm3 = fam3.prepare_norm(torch.ones(256), torch.zeros(256))
    out = fam3.layernorm(torch.randn(150, 256), norm3, op="ln")
    assert out.shape == (150, 256)


def test_missing_and_wrong_xclbin_and_unknown_kernel(pyxrt, tmp_path) -> None:
    build = tmp_path / "build"
    (build / "layernorm_n256.xclbin").write_bytes(b"xclbin2\0" + bytes(64))  # a real (binary) xclbin
    with pytest.raises(DeviceUnavailable, match=r"cannot load NPU kernel family layernorm_n256.xclbin .*cannot run it"):
        encoder_on(XrtDevice())
    (build / "layernorm_n256.xclbin").write_text("garbage")
    with pytest.raises(DeviceUnavailable, match=r"layernorm_n256.*invalid xclbin"):
        encoder_on(XrtDevice())
    os.remove(build / "layernorm_n256.xclbin")
    with pytest.raises(DeviceUnavailable, match=r"NPU kernels not built: missing layernorm_n256.xclbin"):
        XrtDevice()


def test_unknown_kernel_name(pyxrt, tmp_path) -> None:
    path = tmp_path / "build" / "manifest.json"
    data = json.loads(path.read_text())
    for k in data["kernels"]:
        if k["kind"] == "gemm":
            k["kernel"] = "NOT_THERE"
    path.write_text(json.dumps(data))
    with pytest.raises(DeviceUnavailable, match=r"kernel 'NOT_THERE' not in .*gemm.xclbin"):
        encoder_on(XrtDevice())


def test_no_kernel_for_shape_is_a_clear_error(pyxrt) -> None:
    dev = XrtDevice()
    with pytest.raises(DeviceUnavailable, match="no NPU gemm kernel built for K=128, N=128"):
        dev.prepare_gemm(torch.zeros(100, 7), None)
    w = dev.prepare_gemm(torch.zeros(256, 256), None)
    with pytest.raises(KernelError, match="no NPU gemm instruction stream built for M=999"):
        dev.gemm(torch.zeros(999, 256), w, op="qkv", gelu=True)
    with pytest.raises(KernelError, match="no NPU attention instruction stream built for T=100"):
        dev.attention_qkv(torch.zeros(100, 768), 4)


def test_mid_job_failure_falls_back_to_cpu(pyxrt) -> None:
    """An ERT error at the 3rd layer's attention run: the window finishes on cpu, the user is told."""
    heads, layers = 4, 4
    pyxrt.fail("attention", at=3)  # layer 2's (one run per layer)
    rec = Recorder()
    told: list[str] = []
    enc = encoder_on(XrtDevice(rec), layers=layers, fallback=CpuDevice, on_fallback=told.append)
    mel = random_mel(80, 150)
    out = enc(mel)
    cpu_out = encoder_on(CpuDevice(), layers=layers)(mel)
    assert torch.allclose(out, cpu_out, atol=1e-6, rtol=0)
    assert len(told) == 1 and "'xrt' failed" in told[0] and "ERT_CMD_STATE_ERROR" in told[0] and "'cpu'" in told[0]
    assert {"xrt", "cpu"} <= {e.device for e in rec.events}
    assert {e.layer for e in rec.events if e.device == "xrt" and e.op == "attention"} == {0, 1}
    cpu_attn = [e for e in rec.events if e.device == "cpu" and e.op == "attention"]
    assert {e.layer for e in cpu_attn} == set(range(layers)) and len(cpu_attn) == layers * heads * N_Q


# -- the stand-in is strict where XRT is, lenient where pyxrt is -----------------------------


def test_standin_catches_host_mistakes(pyxrt) -> None:
    dev = XrtDevice()
    norm = dev.prepare_norm(torch.ones(256), torch.zeros(256))
    fam = dev._family("layernorm_n256.xclbin")
    entry = fam.entries[0]
    x, y = fam.act(entry, "x"), fam.act(entry, "y")
    x.map()[0] = 1  # written but not synced
    with pytest.raises(KernelError, match="changed but not synced"):
        fam.run(entry, x, norm.p, y)
    x.sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
    with pytest.raises(KernelError, match=r"group_id\(3\)"):
        fam.run(entry, norm.p, norm.p, y)  # the params bo (group of arg 4) passed as arg 3
    small = pyxrt.bo(dev.xdevice, 64, pyxrt.bo.host_only, fam.kernel.group_id(3))
    with pytest.raises(KernelError, match="has 64 bytes"):
        fam.run(entry, small, norm.p, y)
    # pyxrt accepts fewer arguments (the rest stay unset): the run starts and fails at the DMA
    with pytest.raises(KernelError, match="ended in ERT_CMD_STATE_ERROR"):
        fam.run(entry, x, norm.p)
    fam.run(entry, x, norm.p, y, y, y, y, y, y)  # ... and ignores extra ones, like pyxrt.cpp
    instr, n = fam.stream(entry)
    bad_instr = pyxrt.bo(dev.xdevice, n * 4, pyxrt.bo.host_only, fam.kernel.group_id(1))
    with pytest.raises(RuntimeError, match="instruction bo must be cacheable"):
        fam.kernel(3, bad_instr, n, x, norm.p, y)
    with pytest.raises(RuntimeError, match="holds none of the streams"):
        fam.kernel(3, instr, n - 1, x, norm.p, y)


def test_failure_injection_by_environment(pyxrt, monkeypatch) -> None:
    monkeypatch.setenv("PYXRT_STANDIN_FAIL", "layernorm@2=ABORT")
    pyxrt.reset()
    enc = encoder_on(XrtDevice())
    with pytest.raises(KernelError, match=r"layernorm_256x256 ended in ERT_CMD_STATE_ABORT"):
        enc(random_mel(80, 150))
    assert pyxrt.stats.runs_by_kind["layernorm"] == 2


def test_reference_device_from_registry() -> None:
    dev = create_device("reference")
    assert isinstance(dev, ReferenceDevice) and probe("reference").available


def test_pyxrt_is_imported_only_when_the_device_is_probed_or_made() -> None:
    import subprocess

    code = (
        "import sys, npu_whisper_app.devices as d, npu_whisper_app.devices.xrt\n"
        "assert 'pyxrt' not in sys.modules\n"
        "info = d.probe('xrt')\n"
        "print(info.available, info.reason)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert res.returncode == 0, res.stderr
    if importlib.util.find_spec("pyxrt") is None:  # this machine has no XRT
        assert res.stdout.startswith("False pyxrt is not importable")

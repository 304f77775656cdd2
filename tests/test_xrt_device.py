"""The xrt device end to end through the pyxrt stand-in (tests/standin/pyxrt.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys

import pytest
import torch

from npu_whisper_app.devices import create_device, probe
from npu_whisper_app.devices.base import DeviceUnavailable, KernelError
from npu_whisper_app.devices.cpu import CpuDevice
from npu_whisper_app.devices.reference import ReferenceDevice
from npu_whisper_app.devices.xrt import XrtDevice, parse_xrt_smi
from npu_whisper_app.model.encoder import TiledEncoder
from npu_whisper_app.profiling import Recorder
from standin.support import install, random_encoder, random_mel

# small but shaped like Whisper: 150 frames = 2 full query tiles + a partial one of 22
SMALL = (80, 150, 256, 4)  # n_mels, n_ctx, d, heads (Dh = 64)
N_Q = 3


@pytest.fixture
def pyxrt(monkeypatch, tmp_path):
    return install(monkeypatch, tmp_path, SMALL)


def encoder_on(device, layers: int = 2, fallback=None, on_fallback=None, seed: int = 0):
    n_mels, n_ctx, d, h = SMALL
    return TiledEncoder(random_encoder(n_mels, n_ctx, d, h, layers, seed), h, device, fallback, on_fallback)


# -- discovery -------------------------------------------------------------------------


def test_probe_reasons(pyxrt, monkeypatch, tmp_path) -> None:
    info = probe("xrt")
    assert info.available, info.reason
    assert info.details["kernels"] == 9 and info.details["accel"]

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
    os.remove(tmp_path / "build" / "attention_t192_d64.insts.bin")
    info = probe("xrt")
    assert not info.available and "attention_t192_d64.insts.bin" in info.reason


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


# -- numerics --------------------------------------------------------------------------


def test_encoder_on_xrt_equals_reference_device(pyxrt) -> None:
    mel = random_mel(80, 150)
    xrt_out = encoder_on(XrtDevice())(mel)
    ref_out = encoder_on(ReferenceDevice())(mel)
    assert torch.equal(xrt_out, ref_out)  # same arithmetic, bit for bit
    cpu_out = encoder_on(CpuDevice())(mel)
    err = (xrt_out - cpu_out).abs().max().item()
    scale = cpu_out.abs().max().item()
    assert 1e-4 < err < 0.02 * scale, (err, scale)  # bf16 numerics: close (~0.6% here), but not fp32


def test_reference_device_per_tile_equals_batched() -> None:
    mel = random_mel(80, 150)
    a = encoder_on(ReferenceDevice(per_tile=True), layers=1)(mel)
    b = encoder_on(ReferenceDevice(), layers=1)(mel)
    assert torch.equal(a, b)


def test_base_shapes_full_window(monkeypatch, tmp_path) -> None:
    """Whisper base: D=512, H=8, T=1500 (partial last tile of 28), conv K=240 and 1536."""
    install(monkeypatch, tmp_path, (80, 1500, 512, 8))
    enc = random_encoder(80, 1500, 512, 8, 1)
    mel = random_mel(80, 1500)
    rec = Recorder()
    xrt_out = TiledEncoder(enc, 8, XrtDevice(rec))(mel)
    ref_out = TiledEncoder(enc, 8, ReferenceDevice())(mel)
    assert torch.equal(xrt_out, ref_out)
    with torch.no_grad():
        fp32 = enc(mel[None])[0]
    err = (xrt_out - fp32).abs().max().item()
    assert err < 0.03 * fp32.abs().max().item(), err
    tiles = {(e.head, e.tile) for e in rec.events if e.op == "attention"}
    assert tiles == {(h, t) for h in range(8) for t in range(24)}


# -- dispatches and buffers ------------------------------------------------------------


def test_one_dispatch_per_head_and_query_tile_and_weights_uploaded_once(pyxrt) -> None:
    rec = Recorder()
    enc = encoder_on(XrtDevice(rec))
    allocs_after_load = pyxrt.stats.bo_allocs
    weight_bytes = pyxrt.stats.bytes_to_device
    sent = []
    for seed in (1, 2, 3):
        before = pyxrt.stats.bytes_to_device
        enc(random_mel(80, 150, seed=seed))
        sent.append(pyxrt.stats.bytes_to_device - before)
        if seed == 1:
            allocs_after_1 = pyxrt.stats.bo_allocs
    assert pyxrt.stats.bo_allocs == allocs_after_1  # activation buffers reused across windows
    assert allocs_after_1 > allocs_after_load
    # window 1 also uploads the attention kernel's instructions and its key count; after
    # that each window sends exactly the same activation bytes and never the weights again
    assert sent[1] == sent[2] < sent[0] < weight_bytes
    t, d, bf16 = 150, 256, 2
    conv = (2 * t * 256 + t * 3 * d) * bf16  # conv1 (K 240 -> 256), conv2: only the rows written
    per_layer = (5 * t * d + t * 4 * d) * bf16  # ln1, qkv, out_proj, ln2, fc1 inputs; fc2 input
    per_layer += 3 * 4 * 192 * 64 * bf16  # attention q, k, v of all heads (padded to 192 keys)
    assert sent[1] == conv + 2 * per_layer + t * d * bf16  # + ln_post

    for window in range(3):
        for layer in range(2):
            evs = [e for e in rec.events if e.window == window and e.layer == layer and e.op == "attention"]
            assert len(evs) == 4 * N_Q
            assert sorted((e.head, e.tile) for e in evs) == [(h, t) for h in range(4) for t in range(N_Q)]
            assert all(e.device == "xrt" for e in evs)
    runs = pyxrt.stats.runs_by_kind
    assert runs["attention"] == 3 * 2 * 4 * N_Q
    assert runs["gemm"] == 3 * (2 + 2 * 4)
    assert runs["layernorm"] == 3 * (2 * 2 + 1)


def test_several_hardware_contexts_open(pyxrt) -> None:
    enc = encoder_on(XrtDevice())
    enc(random_mel(80, 150))
    assert pyxrt.stats.contexts >= 7  # 5 gemm shapes + attention + layernorm, all open at once
    assert len(enc.device._loaded) == pyxrt.stats.contexts


# -- failures --------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["ERT_CMD_STATE_ERROR", "ERT_CMD_STATE_TIMEOUT", "ERT_CMD_STATE_ABORT"])
def test_failed_run_raises_kernel_error_naming_kernel_and_state(pyxrt, state) -> None:
    pyxrt.fail("attention", at=5, state=state)
    enc = encoder_on(XrtDevice())
    with pytest.raises(KernelError, match=rf"attention_t192_d64 ended in {state}"):
        enc(random_mel(80, 150))


def test_missing_and_wrong_xclbin_and_unknown_kernel(pyxrt, tmp_path) -> None:
    build = tmp_path / "build"
    (build / "layernorm_256x256.xclbin").write_bytes(b"xclbin2\0" + bytes(64))  # a real (binary) xclbin
    with pytest.raises(DeviceUnavailable, match=r"cannot load NPU kernel layernorm_256x256 .*cannot run it"):
        encoder_on(XrtDevice())
    (build / "layernorm_256x256.xclbin").write_text("garbage")
    with pytest.raises(DeviceUnavailable, match=r"layernorm_256x256.*invalid xclbin"):
        encoder_on(XrtDevice())
    os.remove(build / "layernorm_256x256.xclbin")
    with pytest.raises(DeviceUnavailable, match=r"NPU kernels not built: missing layernorm_256x256.xclbin"):
        XrtDevice()


def test_unknown_kernel_name(pyxrt, tmp_path) -> None:
    path = tmp_path / "build" / "manifest.json"
    data = json.loads(path.read_text())
    for k in data["kernels"]:
        if k["kind"] == "gemm":
            k["kernel"] = "NOT_THERE"
    path.write_text(json.dumps(data))
    with pytest.raises(DeviceUnavailable, match=r"kernel 'NOT_THERE' not in .*gemm_"):
        encoder_on(XrtDevice())


def test_no_kernel_for_shape_is_a_clear_error(pyxrt) -> None:
    dev = XrtDevice()
    with pytest.raises(DeviceUnavailable, match="no NPU gemm kernel built for K=100, N=7"):
        dev.prepare_gemm(torch.zeros(100, 7), None)
    w = dev.prepare_gemm(torch.zeros(256, 256), None)
    with pytest.raises(KernelError, match="no NPU gemm kernel built for M=999"):
        dev.gemm(torch.zeros(999, 256), w, op="qkv", gelu=True)
    with pytest.raises(KernelError, match="no NPU attention kernel built for T=100"):
        dev.attention(*(torch.zeros(4, 100, 64) for _ in range(3)))


def test_mid_job_failure_falls_back_to_cpu(pyxrt) -> None:
    """An ERT error at the 3rd layer's attention: the window finishes on cpu, the user is told."""
    heads, layers = 4, 4
    pyxrt.fail("attention", at=2 * heads * N_Q + 1)  # first dispatch of layer 2
    rec = Recorder()
    told: list[str] = []
    enc = encoder_on(XrtDevice(rec), layers=layers, fallback=CpuDevice, on_fallback=told.append)
    mel = random_mel(80, 150)
    out = enc(mel)
    cpu_out = encoder_on(CpuDevice(), layers=layers)(mel)
    assert torch.allclose(out, cpu_out, atol=1e-6, rtol=0)
    assert len(told) == 1 and "'xrt' failed" in told[0] and "ERT_CMD_STATE_ERROR" in told[0] and "'cpu'" in told[0]
    devices = {e.device for e in rec.events}
    assert {"xrt", "cpu"} <= devices
    xrt_attn_layers = {e.layer for e in rec.events if e.device == "xrt" and e.op == "attention"}
    assert xrt_attn_layers == {0, 1}
    cpu_attn = [e for e in rec.events if e.device == "cpu" and e.op == "attention"]
    assert {e.layer for e in cpu_attn} == set(range(layers)) and len(cpu_attn) == layers * heads * N_Q


# -- the stand-in is strict ------------------------------------------------------------


def test_standin_catches_host_mistakes(pyxrt, tmp_path) -> None:
    dev = XrtDevice()
    w = dev.prepare_gemm(torch.randn(256, 256), torch.randn(256))
    lk = dev._load(dev._gemm_variant(150, 256, 256, False))
    a, c = lk.act("a"), lk.act("c")
    a.map()[0] = 1  # written but not synced
    with pytest.raises(KernelError, match="changed but not synced"):
        lk.run(a, w.b, w.bias, c)
    a.sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
    with pytest.raises(KernelError, match=r"group_id\(4\)"):
        lk.run(a, w.bias, w.bias, c)  # bias bo (group of arg 5) passed as arg 4
    small = pyxrt.bo(dev.xdevice, 64, pyxrt.bo.host_only, lk.kernel.group_id(3))
    with pytest.raises(KernelError, match="has 64 bytes"):
        lk.run(small, w.b, w.bias, c)
    with pytest.raises(KernelError, match="takes 7 arguments"):
        lk.run(a, w.b, c)
    lk.run(a, w.b, w.bias, c)  # and the right call works
    bad_instr = pyxrt.bo(dev.xdevice, lk.n_instr * 4, pyxrt.bo.host_only, lk.kernel.group_id(1))
    with pytest.raises(RuntimeError, match="instruction bo must be cacheable"):
        lk.kernel(3, bad_instr, lk.n_instr, a, w.b, w.bias, c)


def test_failure_injection_by_environment(pyxrt, monkeypatch) -> None:
    monkeypatch.setenv("PYXRT_STANDIN_FAIL", "layernorm@2=TIMEOUT")
    pyxrt.reset()
    enc = encoder_on(XrtDevice())
    with pytest.raises(KernelError, match=r"layernorm_256x256 ended in ERT_CMD_STATE_TIMEOUT"):
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

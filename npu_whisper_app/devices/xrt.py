"""The ``xrt`` device: the AMD Ryzen AI NPU through XRT's Python binding ``pyxrt``.

Host side of the kernels in ``kernels/`` (IRON designs, issue #12 layout). The call
sequence is mlir-aie's own (``python/utils/xrt.py``)::

    device = pyxrt.device(0)
    xclbin = pyxrt.xclbin(path); device.register_xclbin(xclbin)
    context = pyxrt.hw_context(device, xclbin.get_uuid())   # ONE per kernel family
    kernel = pyxrt.kernel(context, "MLIR_AIE")
    instr = pyxrt.bo(device, nbytes, pyxrt.bo.cacheable, kernel.group_id(1))   # one per shape
    data_i = pyxrt.bo(device, nbytes, pyxrt.bo.host_only, kernel.group_id(3 + i))
    run = kernel(3, instr, n_instr, data_0, data_1, ...); state = run.wait(timeout_ms)

* **At most three hardware contexts**: ``gemm.xclbin``, ``attention.xclbin`` and
  ``layernorm_n{D}.xclbin``, all opened at weight load (so a context the driver refuses is
  known before the first window). A shape is an instruction stream of its family's xclbin
  (loop counts and flags are runtime parameters the stream writes), passed as argument 1.
* **Runs per 30 s window**: 2 conv gemms + 7 per layer (ln1, qkv, attention, out, ln2,
  fc1+GELU, fc2) + ln_post = 31 for tiny.en, 45 for base. Attention is ONE run per layer
  (every head and query tile, all 16 cores): the host hands it the qkv gemm's output as
  ``[T][3D]`` bf16 and the design's access patterns split the heads (``packed_attention``).
* **Buffers**: weights bf16, pre-tiled ``[N/n][K/k + 1][k][n]`` with the bias in the extra
  block (placed where the core reads it after the memtile's ``dims_to_stream``), uploaded
  once; one activation buffer per (family, argument, size), reused; only the rows written
  are synced to the device, only the rows read are synced back.
* **Honestly: activations round-trip through the host between runs.** The gemm writes f32,
  attention and LayerNorm read bf16, and the residual adds run on the host (fp32), so each
  run's output is synced back, converted and written into the next run's input buffer.
  Keeping them on the device needs bf16-out gemm epilogues and residual fusion (not done).
* **Per-tile attention times from the cores' cycle counters** (``xrt_timing.py``): the
  events ``attention`` per (head, tile) carry the core coordinates and NPU-clock durations.
* A run that ends in any state but ``ERT_CMD_STATE_COMPLETED``, or does not finish within
  ``timeout_ms`` (``ERT_CMD_STATE_TIMEOUT``), raises :class:`KernelError`; the encoder then
  finishes the job on the cpu and says so.
"""
from __future__ import annotations

import glob
import importlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..profiling import Recorder, now_ns
from .base import Device, DeviceError, DeviceInfo, DeviceUnavailable, KernelError
from .bf16 import from_bf16_bits, to_bf16_bits
from .reference import ATTN_TILE, GEMM_K, GEMM_K_PAD, GEMM_N, GEMM_N_PAD, gelu_kernel, round_up
from .xrt_manifest import FIRST_DATA_GROUP, MANIFEST_VERSION, KernelEntry, Manifest, kernels_dir, load_manifest
from .xrt_timing import DEFAULT_AIE_CLOCK_HZ, clock_from_platform, parse_counter_rows, tile_events

OPCODE_TRANSACTION = 3  # first kernel argument of an IRON design's MLIR_AIE kernel
DEFAULT_TIMEOUT_MS = 10_000
ACCEL_DIR_ENV = "NPU_WHISPER_ACCEL_DIR"  # where /dev/accel/accel* nodes live (tests point it elsewhere)
BUILD_HINT = "build them with `make -C kernels` on a Ryzen AI machine (see kernels/README.md)"


def import_pyxrt() -> Any:
    """Import ``pyxrt`` (ships with XRT, e.g. /opt/xilinx/xrt/python), or raise DeviceUnavailable."""
    try:
        return importlib.import_module("pyxrt")
    except Exception as exc:
        raise DeviceUnavailable(
            f"pyxrt is not importable ({type(exc).__name__}: {exc}); install XRT and `source /opt/xilinx/xrt/setup.sh`"
        ) from None


def accel_nodes() -> list[str]:
    root = os.environ.get(ACCEL_DIR_ENV, "/dev/accel")
    return sorted(glob.glob(os.path.join(root, "accel*")))


def parse_xrt_smi(text: str) -> dict[str, Any]:
    """Versions and devices from ``xrt-smi examine`` output."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z][\w .()/-]*?)\s*:\s*(.+?)\s*$", line)
        if m and re.search(r"version|firmware|driver", m.group(1), re.I):
            out[m.group(1)] = m.group(2)
        d = re.match(r"^\s*\|\s*\[([0-9a-fA-F:.]+)\]\s*\|\s*([^|]+?)\s*\|", line)
        if d:
            out.setdefault("devices", []).append({"bdf": d.group(1), "name": d.group(2)})
    return out


def xrt_smi_details(timeout_s: float = 5.0) -> dict[str, Any]:
    exe = shutil.which("xrt-smi") or shutil.which("xbutil")
    if exe is None:
        return {}
    try:
        res = subprocess.run([exe, "examine"], capture_output=True, text=True, timeout=timeout_s)
    except Exception as exc:  # a hung or broken tool must not break discovery
        return {"xrt_smi_error": f"{type(exc).__name__}: {exc}"}
    details = parse_xrt_smi(res.stdout)
    if res.returncode != 0:
        details["xrt_smi_error"] = (res.stderr or res.stdout).strip().splitlines()[-1:] or [f"exit {res.returncode}"]
    return details


# ---------------------------------------------------------------------------------------
# discovery helpers
# ---------------------------------------------------------------------------------------


def npu_generation(name: str) -> str | None:
    """mlir-aie's device for the NPU the driver names: ``RyzenAI-npu1`` (Phoenix, Hawk Point)
    -> npu1; ``npu4``/``npu5``/``npu6`` (Strix, Strix Halo, Krackan: AIE2P) -> npu2."""
    m = re.search(r"npu(\d)", name or "", re.I)
    if m:
        return "npu1" if m.group(1) in ("1", "2", "3") else "npu2"
    if re.search(r"phoenix|hawk", name or "", re.I):
        return "npu1"
    if re.search(r"strix|krackan", name or "", re.I):
        return "npu2"
    return None


def view(b: Any, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A numpy view over a buffer object's host memory (``bo.map()``)."""
    count = int(np.prod(shape))
    return np.frombuffer(b.map(), dtype=dtype, count=count).reshape(shape)


def dims_order(dims: list[list[int]], n: int) -> np.ndarray:
    """Element order of a memtile ``dims_to_stream`` over an ``n``-element object (the
    outermost size is what the object's length leaves)."""
    inner = int(np.prod([s for s, _ in dims[1:]])) if len(dims) > 1 else 1
    idx = np.zeros(1, dtype=np.int64)
    for size, stride in zip([n // inner] + [s for s, _ in dims[1:]], [st for _, st in dims]):
        idx = (idx[:, None] + np.arange(size, dtype=np.int64)[None, :] * stride).reshape(-1)
    return idx


def tile_weight(w: torch.Tensor, bias: torch.Tensor | None, kp: int, np_: int, bias_slots: np.ndarray) -> np.ndarray:
    """``w[K,N]`` (+ ``bias[N]``) -> bf16 bits ``[N/n][K/k + 1][k][n]``: zero-padded weight
    tiles, then per column slab one block whose elements ``bias_slots`` (where the core's
    epilogue finds its first 2n bf16 slots after the memtile transform) hold the f32 bias."""
    k, n = w.shape
    wp = F.pad(w.float(), (0, np_ - n, 0, kp - k))
    tiled = to_bf16_bits(wp.reshape(kp // GEMM_K, GEMM_K, np_ // GEMM_N, GEMM_N).permute(2, 0, 1, 3).contiguous())
    slabs = np_ // GEMM_N
    epi = np.zeros((slabs, GEMM_K * GEMM_N), np.uint16)
    if bias is not None:
        bp = np.zeros(np_, np.float32)
        bp[:n] = bias.detach().float().numpy()
        epi[:, bias_slots] = bp.reshape(slabs, GEMM_N).view(np.uint16)
    return np.concatenate([tiled.reshape(slabs, -1), epi], axis=1)


# ---------------------------------------------------------------------------------------
# a kernel family: one xclbin, one hardware context, one kernel, many instruction streams
# ---------------------------------------------------------------------------------------


class Family:
    def __init__(self, owner: XrtDevice, xclbin_name: str) -> None:
        xrt, dev, root = owner.pyxrt, owner.xdevice, owner.manifest.root
        self.owner = owner
        self.name = xclbin_name
        self.entries = [e for e in owner.manifest.entries if e.xclbin == xclbin_name]
        path = root / xclbin_name
        kname = self.entries[0].kernel
        try:
            self.xclbin = xrt.xclbin(str(path))
            names = [k.get_name() for k in self.xclbin.get_kernels()]
            if kname not in names:
                raise DeviceUnavailable(f"kernel {kname!r} not in {path} (it has {', '.join(names) or 'none'})")
            dev.register_xclbin(self.xclbin)
        except DeviceError:
            raise
        except Exception as exc:
            raise DeviceUnavailable(f"cannot load NPU kernel family {xclbin_name} from {path}: {exc}") from exc
        try:
            self.context = xrt.hw_context(dev, self.xclbin.get_uuid())
        except Exception as exc:
            raise DeviceUnavailable(f"the NPU driver refused a hardware context for {xclbin_name} "
                                    f"({len(owner._families)} of ours already open): {exc}") from exc
        try:
            self.kernel = xrt.kernel(self.context, kname)
        except Exception as exc:
            raise DeviceUnavailable(f"cannot open kernel {kname} of {path}: {exc}") from exc
        self.streams: dict[str, tuple[Any, int]] = {}
        self.buffers: dict[tuple, Any] = {}

    def stream(self, entry: KernelEntry) -> tuple[Any, int]:
        """The instruction bo of one shape (uploaded once)."""
        got = self.streams.get(entry.id)
        if got is None:
            xrt, root = self.owner.pyxrt, self.owner.manifest.root
            try:
                insts = np.fromfile(root / entry.insts, dtype=np.uint32)
                if insts.size == 0:
                    raise DeviceUnavailable(f"instruction stream {root / entry.insts} is empty")
                b = xrt.bo(self.owner.xdevice, insts.nbytes, xrt.bo.cacheable, self.kernel.group_id(1))
                np.frombuffer(b.map(), dtype=np.uint32)[:] = insts
                b.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
            except DeviceError:
                raise
            except Exception as exc:
                raise KernelError(f"cannot load instruction stream {entry.insts}: {exc}") from exc
            got = self.streams[entry.id] = (b, int(insts.size))
        return got

    def new_bo(self, arg_index: int, nbytes: int) -> Any:
        xrt = self.owner.pyxrt
        return xrt.bo(self.owner.xdevice, nbytes, xrt.bo.host_only, self.kernel.group_id(FIRST_DATA_GROUP + arg_index))

    def act(self, entry: KernelEntry, arg: str) -> Any:
        """The reusable buffer for ``arg`` of this shape (shared by shapes of the same size)."""
        i = [a.name for a in entry.args].index(arg)
        key = (i, entry.args[i].nbytes)
        b = self.buffers.get(key)
        if b is None:
            b = self.buffers[key] = self.new_bo(i, entry.args[i].nbytes)
        return b

    def run(self, entry: KernelEntry, *bos: Any) -> None:
        xrt = self.owner.pyxrt
        instr, n_instr = self.stream(entry)
        try:
            r = self.kernel(OPCODE_TRANSACTION, instr, n_instr, *bos)
            state = r.wait(self.owner.timeout_ms)
        except Exception as exc:
            raise KernelError(f"NPU kernel {entry.id} could not run: {exc}") from exc
        self.owner.runs += 1
        if state == xrt.ert_cmd_state.ERT_CMD_STATE_TIMEOUT:
            raise KernelError(f"NPU kernel {entry.id} did not finish within {self.owner.timeout_ms} ms "
                              f"(ERT_CMD_STATE_TIMEOUT); it may still be running on the NPU")
        if state != xrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED:
            name = getattr(state, "name", str(state))
            raise KernelError(f"NPU kernel {entry.id} ended in {name} (expected ERT_CMD_STATE_COMPLETED)")


@dataclass
class XrtGemm:
    k: int
    n: int
    kp: int
    np_: int
    b: Any  # bo: bf16 [N/n][K/k + 1][k][n], weights + bias block

    @property
    def shape(self) -> tuple[int, int]:
        return (self.k, self.n)


@dataclass
class XrtNorm:
    n: int
    p: Any  # bo: f32 gamma[N] | beta[N] | eps | 15 x 0


# ---------------------------------------------------------------------------------------
# the device
# ---------------------------------------------------------------------------------------


class XrtDevice(Device):
    name = "xrt"
    description = "AMD Ryzen AI NPU via XRT (bf16 kernels, fp32 accumulate)"
    add_runs_on = "host"  # residual adds stay on the CPU between kernels
    packed_attention = True  # attention_qkv: one run per layer straight from the qkv gemm's [T, 3D]

    def __init__(
        self,
        recorder: Recorder | None = None,
        kernels: str | Path | None = None,
        device_index: int = 0,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> None:
        super().__init__(recorder)
        self.pyxrt = import_pyxrt()
        self.timeout_ms = timeout_ms
        try:
            self.manifest: Manifest = load_manifest(kernels)
        except Exception as exc:
            raise DeviceUnavailable(f"NPU kernels not built: cannot read manifest in {kernels or kernels_dir()} ({exc}); {BUILD_HINT}") from None
        missing = self.manifest.missing_files()
        if missing:
            raise DeviceUnavailable(f"NPU kernels not built: missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} in {self.manifest.root}; {BUILD_HINT}")
        try:
            self.xdevice = self.pyxrt.device(device_index)
        except Exception as exc:
            raise DeviceUnavailable(f"cannot open NPU device {device_index}: {exc}") from None
        self.npu_name = _info(self.pyxrt, self.xdevice, "name") or "?"
        self.generation = npu_generation(self.npu_name)
        built = self.manifest.devices()
        if self.generation not in built:
            raise DeviceUnavailable(f"NPU {self.npu_name} is {self.generation or 'an unknown generation'}; the kernels in "
                                    f"{self.manifest.root} are built for {', '.join(sorted(built))}; {BUILD_HINT}")
        self.manifest.entries = [e for e in self.manifest.entries if e.device == self.generation]
        clock = clock_from_platform(_info(self.pyxrt, self.xdevice, "platform") or "")
        self.clock_hz, self.clock_source = clock if clock else (DEFAULT_AIE_CLOCK_HZ, "assumed (driver reported no H clock)")
        self._families: dict[str, Family] = {}
        self.runs = 0  # NPU runs started and waited for

    # -- discovery ---------------------------------------------------------------------
    @classmethod
    def probe(cls) -> DeviceInfo:
        details: dict[str, Any] = {"kernels_dir": str(kernels_dir())}
        details.update(xrt_smi_details())

        def no(reason: str) -> DeviceInfo:
            return DeviceInfo(cls.name, False, cls.description, reason, details)

        try:
            xrt = import_pyxrt()
        except DeviceUnavailable as exc:
            return no(str(exc))
        details["pyxrt"] = getattr(xrt, "__file__", "?")
        nodes = accel_nodes()
        if not nodes:
            root = os.environ.get(ACCEL_DIR_ENV, "/dev/accel")
            return no(f"no NPU device node ({root}/accel*): amdxdna driver not loaded or no Ryzen AI NPU")
        details["accel"] = nodes
        try:
            dev = xrt.device(0)
            details["name"] = _info(xrt, dev, "name")
        except Exception as exc:
            return no(f"cannot open NPU device 0 through XRT: {exc}")
        gen = npu_generation(details["name"] or "")
        details["generation"] = gen or "unknown"
        clock = clock_from_platform(_info(xrt, dev, "platform") or "")
        if clock:
            details["aie_clock_mhz"] = clock[0] / 1e6
        try:
            manifest = load_manifest()
        except Exception as exc:
            return no(f"NPU kernels not built: no usable manifest (version {MANIFEST_VERSION}) in {kernels_dir()} ({type(exc).__name__}); {BUILD_HINT}")
        built = sorted(manifest.devices())
        details["kernels_built_for"] = built
        missing = manifest.missing_files()
        if missing:
            return no(f"NPU kernels not built: {len(missing)} file(s) missing in {manifest.root}, e.g. {missing[0]}; {BUILD_HINT}")
        if gen not in built:
            return no(f"NPU {details['name']} is {gen or 'an unknown generation'}; kernels are built for {', '.join(built)}; {BUILD_HINT}")
        mine = [e for e in manifest.entries if e.device == gen]
        details["xclbins"] = len({e.xclbin for e in mine})
        details["kernels"] = len(mine)  # instruction streams (shapes)
        return DeviceInfo(cls.name, True, f"{details['name']} ({gen}) · {details['xclbins']} xclbins, {len(mine)} shapes", "", details)

    # -- families and shapes -------------------------------------------------------------
    def _family(self, xclbin_name: str) -> Family:
        f = self._families.get(xclbin_name)
        if f is None:
            f = self._families[xclbin_name] = Family(self, xclbin_name)
        return f

    def _family_of(self, kind: str, **shape: int) -> Family:
        for e in self.manifest.by_kind(kind):
            if all(e.shape.get(k) == v for k, v in shape.items()):
                return self._family(e.xclbin)
        what = ", ".join(f"{k}={v}" for k, v in shape.items())
        raise DeviceUnavailable(f"no NPU {kind} kernel built for {what}; {BUILD_HINT}")

    def _stream(self, kind: str, rows: int, **shape: Any) -> KernelEntry:
        """The smallest instruction stream of ``kind`` with these sizes that covers ``rows``."""
        key = "T" if kind == "attention" else "M"
        fits = [e for e in self.manifest.by_kind(kind)
                if all(e.shape.get(k) == v or e.params.get(k) == v for k, v in shape.items()) and e.shape[key] >= rows]
        if not fits:
            what = ", ".join([f"{key}={rows}"] + [f"{k}={v}" for k, v in shape.items()])
            raise KernelError(f"no NPU {kind} instruction stream built for {what}; {BUILD_HINT}")
        return min(fits, key=lambda e: e.shape[key])

    @property
    def contexts(self) -> int:
        return len(self._families)

    def _sync_to(self, b: Any, nbytes: int | None = None, offset: int = 0) -> None:
        d = self.pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE
        b.sync(d) if nbytes is None else b.sync(d, nbytes, offset)

    def _sync_from(self, b: Any, nbytes: int | None = None, offset: int = 0) -> None:
        d = self.pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE
        b.sync(d) if nbytes is None else b.sync(d, nbytes, offset)

    # -- weights -------------------------------------------------------------------------
    def prepare_gemm(self, weight: torch.Tensor, bias: torch.Tensor | None) -> XrtGemm:
        k, n = weight.shape
        kp, np_ = round_up(k, GEMM_K_PAD), round_up(n, GEMM_N_PAD)
        fam = self._family_of("gemm", K=kp, N=np_)
        if self.manifest.by_kind("attention"):  # all contexts at load: a refused one is known now
            self._family(self.manifest.by_kind("attention")[0].xclbin)
        entry = next(e for e in fam.entries if e.shape["K"] == kp and e.shape["N"] == np_)
        slots = dims_order(entry.dims["B_L2L1_0"], GEMM_K * GEMM_N)[: 2 * GEMM_N]
        tiled = tile_weight(weight.detach(), bias, kp, np_, slots).reshape(-1)
        b = fam.new_bo(1, tiled.nbytes)
        view(b, np.uint16, (tiled.size,))[:] = tiled
        self._sync_to(b)
        return XrtGemm(k, n, kp, np_, b)

    def prepare_norm(self, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> XrtNorm:
        n = gamma.shape[0]
        fam = self._family_of("layernorm", N=n)
        p = fam.new_bo(1, (2 * n + 16) * 4)
        pv = view(p, np.float32, (2 * n + 16,))
        pv[:] = 0.0
        pv[:n] = gamma.detach().float().numpy()
        pv[n: 2 * n] = beta.detach().float().numpy()
        pv[2 * n] = eps
        self._sync_to(p)
        return XrtNorm(n, p)

    # -- kernels ---------------------------------------------------------------------------
    def gemm(self, x: torch.Tensor, w: XrtGemm, *, op: str, gelu: bool = False, residual: torch.Tensor | None = None) -> torch.Tensor:
        if residual is not None:
            raise ValueError("the xrt device does not fuse residual adds")
        t, k = x.shape
        if k != w.k:
            raise ValueError(f"{op}: x has K={k}, weight has K={w.k}")
        entry = self._stream("gemm", t, K=w.kp, N=w.np_, gelu=gelu)
        start = now_ns()
        fam = self._family(entry.xclbin)
        mp = entry.shape["M"]
        a, c = fam.act(entry, "a"), fam.act(entry, "c")
        av = view(a, np.uint16, (mp, w.kp))
        av[:t, :k] = to_bf16_bits(x)
        if k < w.kp:
            av[:t, k:] = 0  # K padding must be zero (another weight may share this buffer)
        self._sync_to(a, t * w.kp * 2)  # only the rows written
        fam.run(entry, a, w.b, c)
        self._sync_from(c, t * w.np_ * 4)  # only the rows read
        y = torch.from_numpy(view(c, np.float32, (mp, w.np_))[:t, : w.n].copy())
        end = now_ns()
        self.recorder.record(op, self.name, start, end, 2 * t * k * w.n, 2 * t * w.kp + 4 * t * w.np_)
        return y

    def layernorm(self, x: torch.Tensor, norm: XrtNorm, *, op: str) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        t, n = x2.shape
        entry = self._stream("layernorm", t, N=n)
        start = now_ns()
        fam = self._family(entry.xclbin)
        xb, yb = fam.act(entry, "x"), fam.act(entry, "y")
        mp = entry.shape["M"]
        view(xb, np.uint16, (mp, n))[:t] = to_bf16_bits(x2)
        self._sync_to(xb, t * n * 2)
        fam.run(entry, xb, norm.p, yb)
        self._sync_from(yb, t * n * 2)
        y = from_bf16_bits(view(yb, np.uint16, (mp, n))[:t]).reshape(shape)
        end = now_ns()
        self.recorder.record(op, self.name, start, end, 8 * x.numel(), 4 * x.numel())
        return y

    def gelu(self, x: torch.Tensor, *, op: str) -> torch.Tensor:
        """Not an NPU run: GELU is fused into the gemm epilogue; a standalone one runs on the host."""
        start = now_ns()
        y = gelu_kernel(x)
        self.recorder.record(op, "host", start, now_ns(), 8 * x.numel(), 4 * x.numel())
        return y

    def attention_qkv(self, qkv: torch.Tensor, n_head: int, *, op: str = "attention") -> torch.Tensor:
        """``qkv[T, 3D]`` -> ``[T, D]`` in one NPU run (all heads, all query tiles)."""
        t, three_d = qkv.shape
        d = three_d // 3 // n_head
        entry = self._stream("attention", t, H=n_head, valid=t, D=d)
        rec, name = self.recorder, self.name
        start = now_ns()
        fam = self._family(entry.xclbin)
        tp = entry.shape["T"]
        nq = tp // ATTN_TILE
        qb, ob = fam.act(entry, "qkv"), fam.act(entry, "o")
        view(qb, np.uint16, (tp, three_d))[:t] = to_bf16_bits(qkv)  # rows t.. stay zero
        self._sync_to(qb, t * three_d * 2)
        io_end = now_ns()
        rec.record(f"{op}_io", name, start, io_end, 0, t * three_d * 2)
        fam.run(entry, qb, ob)
        run_end = now_ns()
        self._sync_from(ob)
        o = view(ob, np.uint16, (n_head, nq, ATTN_TILE + 1, d))
        try:
            timings = parse_counter_rows(o[:, :, ATTN_TILE])
        except ValueError as exc:
            raise KernelError(f"NPU kernel {entry.id}: {exc}") from exc
        out = from_bf16_bits(np.ascontiguousarray(o[:, :, :ATTN_TILE])).reshape(n_head, tp, d)[:, :t]
        out = out.permute(1, 0, 2).reshape(t, n_head * d)
        for head, tile, s, e, core, _cycles in tile_events(timings, self.clock_hz, io_end,
                                                          keep=lambda h, ti: ti * ATTN_TILE < t):
            rows = min(ATTN_TILE, t - tile * ATTN_TILE)
            rec.record(op, name, s, e, 4 * rows * t * d, 2 * (ATTN_TILE * d + 2 * t * d), head, tile, core)
        rec.record(f"{op}_io", name, run_end, now_ns(), 0, n_head * nq * (ATTN_TILE + 1) * d * 2)
        return out

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, op: str = "attention") -> torch.Tensor:
        """``q/k/v[H, T, d]`` through the packed kernel (the host packs them side by side)."""
        h, t, d = q.shape
        qkv = torch.cat([z.permute(1, 0, 2).reshape(t, h * d) for z in (q, k, v)], dim=1)
        return self.attention_qkv(qkv, h, op=op).view(t, h, d).permute(1, 0, 2).contiguous()

    def close(self) -> None:
        self._families.clear()


def _info(xrt: Any, dev: Any, key: str) -> str | None:
    try:
        return dev.get_info(getattr(xrt.xrt_info_device, key))
    except Exception:
        return None

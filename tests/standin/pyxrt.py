"""A stand-in for XRT's ``pyxrt`` Python binding, for tests on machines without an NPU.

It mirrors the subset of the API in XRT's ``src/python/pybind11/src/pyxrt.cpp`` that
mlir-aie's host code (``python/utils/xrt.py``) and ``npu_whisper_app.devices.xrt`` use:
``device``, ``xclbin`` (+ ``get_kernels``/``get_uuid``), ``hw_context``, ``kernel``
(``group_id``, call -> ``run``), ``run`` (``wait``/``wait2``/``state``), ``bo``
(``flags`` incl. ``bo.cacheable``/``bo.host_only``, ``map``/``write``/``read``/``sync``,
sub-buffers), ``xclBOSyncDirection``, ``ert_cmd_state``.

Faithfulness and strictness:

* A buffer has a host copy and a device copy; only ``sync`` moves bytes between them, so a
  forgotten sync gives stale data exactly where real hardware would (and strict mode
  raises at kernel start when an input's host bytes differ from what was synced).
* Kernel calls check the argument list the IRON runtime expects: ``(3, instr_bo, n_instr,
  data bos...)``, the instruction bo is ``cacheable`` on ``group_id(1)`` and holds the
  synced instruction words of the xclbin's ``insts`` file, every data bo is ``host_only``
  on ``group_id(arg index)`` and large enough for the manifest's argument.
* Starting a kernel runs the ``reference`` numerics (``npu_whisper_app.devices.reference``)
  on the device copies and writes the device copy of the output.

An "xclbin" the stand-in accepts is a small JSON file (``{"format": FORMAT, "uuid": ...,
"kernels": [...], "manifest_id": ...}``) next to the ``manifest.json`` that describes it
(see :func:`write_fake_build`). Knobs: ``DEVICES`` (env ``PYXRT_STANDIN_DEVICES``, number
of NPUs present), ``fail(...)`` / env ``PYXRT_STANDIN_FAIL`` (``kind_or_id@nth=STATE``,
comma separated), ``STRICT``; counters in ``stats``; ``reset()`` restores defaults.
"""

from __future__ import annotations

import enum
import json
import os
import uuid as _uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from npu_whisper_app.devices import reference as ref
from npu_whisper_app.devices.bf16 import from_bf16_bits, to_bf16_bits
from npu_whisper_app.devices.xrt_manifest import DTYPE_BYTES, FIRST_DATA_GROUP, MANIFEST_NAME, KernelEntry, load_manifest

FORMAT = "pyxrt-standin-xclbin/1"
STANDIN = True
XCL_BO_FLAGS_NONE = 0


class xclBOSyncDirection(enum.IntEnum):
    XCL_BO_SYNC_BO_TO_DEVICE = 0
    XCL_BO_SYNC_BO_FROM_DEVICE = 1
    XCL_BO_SYNC_BO_GMIO_TO_AIE = 2
    XCL_BO_SYNC_BO_AIE_TO_GMIO = 3


class ert_cmd_state(enum.IntEnum):  # values of XRT's ert.h
    ERT_CMD_STATE_NEW = 1
    ERT_CMD_STATE_QUEUED = 2
    ERT_CMD_STATE_RUNNING = 3
    ERT_CMD_STATE_COMPLETED = 4
    ERT_CMD_STATE_ERROR = 5
    ERT_CMD_STATE_ABORT = 6
    ERT_CMD_STATE_SUBMITTED = 7
    ERT_CMD_STATE_TIMEOUT = 8
    ERT_CMD_STATE_NORESPONSE = 9
    ERT_CMD_STATE_SKERROR = 10
    ERT_CMD_STATE_SKCRASHED = 11


class xrt_info_device(enum.IntEnum):
    bdf = 0
    name = 5


# ---------------------------------------------------------------------------------------
# knobs and counters
# ---------------------------------------------------------------------------------------


@dataclass
class Failure:
    match: str  # manifest kind ("attention") or id
    at: int  # the n-th matching run (1-based) fails ...
    state: ert_cmd_state
    times: int = 1  # ... and this many after it


@dataclass
class Stats:
    bo_allocs: int = 0  # root buffer objects
    bo_bytes: int = 0
    sub_bos: int = 0
    syncs_to_device: int = 0
    syncs_from_device: int = 0
    bytes_to_device: int = 0
    bytes_from_device: int = 0
    xclbins_registered: int = 0
    contexts: int = 0
    kernels: int = 0
    runs: Counter = field(default_factory=Counter)  # manifest id -> runs
    runs_by_kind: Counter = field(default_factory=Counter)
    alloc_log: list = field(default_factory=list)  # (size, flags, group)


DEVICES = int(os.environ.get("PYXRT_STANDIN_DEVICES", "1"))
STRICT = True
FAILURES: list[Failure] = []
stats = Stats()


def _env_failures() -> list[Failure]:
    spec = os.environ.get("PYXRT_STANDIN_FAIL", "").strip()
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        target, _, state = item.partition("=")
        match, _, at = target.partition("@")
        state = state or "ERT_CMD_STATE_ERROR"
        out.append(Failure(match, int(at or 1), ert_cmd_state[state if state.startswith("ERT") else f"ERT_CMD_STATE_{state}"]))
    return out


def reset() -> None:
    """Defaults: one device, no failures, strict, zeroed counters."""
    global DEVICES, STRICT, stats
    DEVICES = int(os.environ.get("PYXRT_STANDIN_DEVICES", "1"))
    STRICT = True
    FAILURES[:] = _env_failures()
    stats = Stats()


def fail(match: str, at: int = 1, state: str | ert_cmd_state = "ERT_CMD_STATE_ERROR", times: int = 1) -> None:
    """Make the ``at``-th run of kernels matching ``match`` (kind or id) end in ``state``."""
    st = state if isinstance(state, ert_cmd_state) else ert_cmd_state[state]
    FAILURES.append(Failure(match, at, st, times))


reset()


def enumerate_devices() -> int:
    return DEVICES


# ---------------------------------------------------------------------------------------
# uuid, xclbin, device, hw_context
# ---------------------------------------------------------------------------------------


class uuid:
    def __init__(self, text: str) -> None:
        self._text = str(_uuid.UUID(str(text)))

    def to_string(self) -> str:
        return self._text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, uuid) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)


class xclbin:
    class xclbinkernel:
        def __init__(self, name: str = "", num_args: int = 0) -> None:
            self._name, self._num_args = name, num_args

        def get_name(self) -> str:
            return self._name

        def get_num_args(self) -> int:
            return self._num_args

    def __init__(self, filename: str) -> None:
        path = Path(filename)
        if not path.is_file():
            raise RuntimeError(f"xclbin: failed to open '{filename}': No such file or directory")
        raw = path.read_bytes()
        if raw[:7] == b"xclbin2":
            raise RuntimeError(f"xclbin '{filename}': a real xclbin; the pyxrt stand-in cannot run it")
        try:
            meta = json.loads(raw)
            if meta.get("format") != FORMAT:
                raise ValueError(meta.get("format"))
        except Exception:
            raise RuntimeError(f"xclbin '{filename}': invalid xclbin (bad magic)") from None
        self._path = path
        self._meta = meta
        self._uuid = uuid(meta["uuid"])
        manifest = load_manifest(path.parent)
        matches = [e for e in manifest.entries if e.xclbin == path.name]
        if not matches or matches[0].id != meta.get("manifest_id"):
            raise RuntimeError(f"xclbin '{filename}': not described by {path.parent / MANIFEST_NAME}")
        self._entry: KernelEntry = matches[0]
        self._insts_path = path.parent / self._entry.insts

    def get_uuid(self) -> uuid:
        return self._uuid

    def get_kernels(self) -> list["xclbin.xclbinkernel"]:
        return [xclbin.xclbinkernel(k["name"], k["num_args"]) for k in self._meta["kernels"]]

    def get_xsa_name(self) -> str:
        return "npu1"


class device:
    def __init__(self, index: int | str = 0) -> None:
        if not isinstance(index, int) or not 0 <= index < DEVICES:
            raise RuntimeError(f"No such device with index '{index}' ({DEVICES} present)")
        self.index = index
        self._registered: dict[uuid, xclbin] = {}

    def register_xclbin(self, xb: xclbin) -> uuid:
        if not isinstance(xb, xclbin):
            raise TypeError("register_xclbin(): incompatible function arguments")
        self._registered[xb.get_uuid()] = xb
        stats.xclbins_registered += 1
        return xb.get_uuid()

    def load_xclbin(self, xb: xclbin | str) -> uuid:
        return self.register_xclbin(xb if isinstance(xb, xclbin) else xclbin(xb))

    def get_info(self, key: xrt_info_device) -> str:
        return {xrt_info_device.name: "NPU Phoenix (pyxrt stand-in)", xrt_info_device.bdf: "0000:c5:00.1"}.get(key, "NA")


class hw_context:
    def __init__(self, dev: device, xclbin_uuid: uuid) -> None:
        if not isinstance(dev, device) or not isinstance(xclbin_uuid, uuid):
            raise TypeError("hw_context(): incompatible constructor arguments")
        if xclbin_uuid not in dev._registered:
            raise RuntimeError(f"hw_context: xclbin {xclbin_uuid.to_string()} is not registered with the device")
        self.device = dev
        self.xclbin = dev._registered[xclbin_uuid]
        stats.contexts += 1


# ---------------------------------------------------------------------------------------
# buffer objects
# ---------------------------------------------------------------------------------------


class bo:
    class flags(enum.IntEnum):
        normal = 0
        cacheable = 1 << 24
        device_only = 1 << 25
        host_only = 1 << 29
        p2p = 1 << 30
        svm = 1 << 27

    normal = flags.normal  # pybind11 export_values()
    cacheable = flags.cacheable
    device_only = flags.device_only
    host_only = flags.host_only
    p2p = flags.p2p
    svm = flags.svm

    def __init__(self, *args) -> None:
        if len(args) == 4 and isinstance(args[0], device):
            dev, size, flg, group = args
            if not isinstance(flg, bo.flags):
                raise TypeError("bo(): flags must be pyxrt.bo.flags")
            if not isinstance(size, (int, np.integer)) or size <= 0:
                raise RuntimeError(f"bo(): bad size {size!r}")
            if not isinstance(group, (int, np.integer)):
                raise TypeError("bo(): memory group must be an int (kernel.group_id(i))")
            self._host = np.zeros(int(size), np.uint8)
            self._dev = np.zeros(int(size), np.uint8)
            self._offset, self._size = 0, int(size)
            self._flags, self._group, self._parent = flg, int(group), None
            stats.bo_allocs += 1
            stats.bo_bytes += int(size)
            stats.alloc_log.append((int(size), flg.name, int(group)))
        elif len(args) == 3 and isinstance(args[0], bo):
            parent, size, offset = args
            if offset < 0 or size <= 0 or offset + size > parent._size:
                raise RuntimeError(f"sub-buffer [{offset}, {offset + size}) outside parent of {parent._size} bytes")
            root = parent
            self._host = root._host
            self._dev = root._dev
            self._offset, self._size = parent._offset + int(offset), int(size)
            self._flags, self._group, self._parent = parent._flags, parent._group, parent
            stats.sub_bos += 1
        else:
            raise TypeError("bo(): incompatible constructor arguments")

    def _span(self, size: int | None = None, offset: int = 0) -> slice:
        size = self._size - offset if size is None else size
        if offset < 0 or size < 0 or offset + size > self._size:
            raise RuntimeError(f"bo: range [{offset}, {offset + size}) outside buffer of {self._size} bytes")
        return slice(self._offset + offset, self._offset + offset + size)

    def size(self) -> int:
        return self._size

    def address(self) -> int:
        return 0x4000_0000 + id(self._host) % 0x1000_0000 + self._offset

    def map(self) -> memoryview:
        return memoryview(self._host[self._span()])

    def write(self, data, seek: int) -> None:
        buf = np.frombuffer(memoryview(data).cast("B"), np.uint8)
        self._host[self._span(buf.size, seek)] = buf

    def read(self, size: int, skip: int) -> np.ndarray:
        return self._host[self._span(size, skip)].view(np.int8).copy()

    def sync(self, direction: xclBOSyncDirection, size: int | None = None, offset: int = 0) -> None:
        if not isinstance(direction, xclBOSyncDirection):
            raise TypeError("sync(): direction must be pyxrt.xclBOSyncDirection")
        span = self._span(size, offset)
        n = span.stop - span.start
        if direction == xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE:
            self._dev[span] = self._host[span]
            stats.syncs_to_device += 1
            stats.bytes_to_device += n
        elif direction == xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE:
            self._host[span] = self._dev[span]
            stats.syncs_from_device += 1
            stats.bytes_from_device += n
        else:
            raise RuntimeError(f"sync(): {direction.name} is not supported on the NPU")

    # device-side view (what a kernel sees)
    def _device_array(self, dtype: np.dtype, count: int) -> np.ndarray:
        return self._dev[self._span(count * np.dtype(dtype).itemsize)].view(dtype)

    def _host_bytes(self, nbytes: int) -> np.ndarray:
        return self._host[self._span(nbytes)]


# ---------------------------------------------------------------------------------------
# kernels and runs
# ---------------------------------------------------------------------------------------

GROUP_BASE = 0x10  # group ids differ from argument indices, so mixing them up is caught


class kernel:
    class cu_access_mode(enum.IntEnum):
        exclusive = 0
        shared = 1
        none = 2

    def __init__(self, *args) -> None:
        if len(args) == 2 and isinstance(args[0], hw_context):
            ctx, name = args
        else:
            raise TypeError("kernel(): use kernel(hw_context, name) on the NPU")
        names = {k.get_name(): k for k in ctx.xclbin.get_kernels()}
        if name not in names:
            raise RuntimeError(f"No such kernel '{name}' in xclbin (has: {', '.join(names)})")
        self._ctx = ctx
        self._name = name
        self._num_args = names[name].get_num_args()
        self._entry: KernelEntry = ctx.xclbin._entry
        self._insts = np.fromfile(ctx.xclbin._insts_path, dtype=np.uint32)
        stats.kernels += 1

    def group_id(self, argno: int) -> int:
        if not 0 <= argno < self._num_args:
            raise RuntimeError(f"group_id: kernel '{self._name}' has no argument {argno}")
        if argno in (0, 2):
            raise RuntimeError(f"group_id: argument {argno} of '{self._name}' is a scalar")
        return GROUP_BASE + argno

    def __call__(self, *args) -> "run":
        r = run(self)
        r._args = list(args)
        r.start()
        return r


class run:
    def __init__(self, k: kernel | None = None) -> None:
        self._kernel = k
        self._args: list = []
        self._state = ert_cmd_state.ERT_CMD_STATE_NEW

    def set_arg(self, i: int, item) -> None:
        while len(self._args) <= i:
            self._args.append(None)
        self._args[i] = item

    def state(self) -> ert_cmd_state:
        return self._state

    def wait(self, timeout_ms: int = 0) -> ert_cmd_state:
        return self._state

    def wait2(self, timeout_ms: int = 0):
        if self._state == ert_cmd_state.ERT_CMD_STATE_TIMEOUT:
            return "timeout"
        if self._state != ert_cmd_state.ERT_CMD_STATE_COMPLETED:
            raise RuntimeError(f"command failed with state {self._state.name}")
        return "no_timeout"

    # -- execution ---------------------------------------------------------------------
    def start(self) -> None:
        k = self._kernel
        if k is None:
            raise RuntimeError("run: no kernel")
        e = k._entry
        args = self._args
        if len(args) != k._num_args:
            raise RuntimeError(f"kernel '{k._name}' ({e.id}) takes {k._num_args} arguments, got {len(args)}")
        opcode, instr, n_instr, *data = args
        if opcode != 3:
            raise RuntimeError(f"{e.id}: opcode {opcode!r}, expected 3 (transaction/instruction stream)")
        self._check_instr(k, instr, n_instr)
        for i, (b, spec) in enumerate(zip(data, e.args)):
            argno = FIRST_DATA_GROUP + i
            if not isinstance(b, bo):
                raise RuntimeError(f"{e.id}: argument {argno} ({spec.name}) must be a bo, got {type(b).__name__}")
            if b._flags != bo.flags.host_only:
                raise RuntimeError(f"{e.id}: argument {argno} ({spec.name}) bo must be host_only, is {b._flags.name}")
            if b._group != k.group_id(argno):
                raise RuntimeError(
                    f"{e.id}: argument {argno} ({spec.name}) bo was made for group {b._group}, kernel needs group_id({argno})={k.group_id(argno)}"
                )
            if b._size < spec.nbytes:
                raise RuntimeError(f"{e.id}: argument {argno} ({spec.name}) bo has {b._size} bytes, needs {spec.nbytes}")
            if STRICT and spec.dir == "in":
                span = b._span(spec.nbytes)
                if not np.array_equal(b._host[span], b._dev[span]):
                    raise RuntimeError(f"{e.id}: argument {argno} ({spec.name}) host data was changed but not synced to the device")
        stats.runs[e.id] += 1
        stats.runs_by_kind[e.kind] += 1
        for f in FAILURES:
            if f.match in (e.id, e.kind):
                n = stats.runs[e.id] if f.match == e.id else stats.runs_by_kind[e.kind]
                if f.at <= n < f.at + f.times:
                    self._state = f.state
                    return
        _execute(e, data)
        self._state = ert_cmd_state.ERT_CMD_STATE_COMPLETED

    def _check_instr(self, k: kernel, instr, n_instr) -> None:
        e = k._entry
        if not isinstance(instr, bo):
            raise RuntimeError(f"{e.id}: argument 1 must be the instruction bo")
        if instr._flags != bo.flags.cacheable:
            raise RuntimeError(f"{e.id}: instruction bo must be cacheable, is {instr._flags.name}")
        if instr._group != k.group_id(1):
            raise RuntimeError(f"{e.id}: instruction bo must be on group_id(1)")
        if n_instr != k._insts.size:
            raise RuntimeError(f"{e.id}: instruction count {n_instr} != {k._insts.size} words in {e.insts}")
        words = instr._dev[instr._span(4 * k._insts.size)].view(np.uint32)
        if not np.array_equal(words, k._insts):
            raise RuntimeError(f"{e.id}: instruction bo does not hold {e.insts} on the device (not written or not synced)")


def _arr(b: bo, spec) -> torch.Tensor:
    count = int(np.prod(spec.shape))
    if spec.dtype == "bf16":
        return from_bf16_bits(b._device_array(np.uint16, count)).view(*spec.shape)
    if spec.dtype == "f32":
        return torch.from_numpy(b._device_array(np.float32, count).copy()).view(*spec.shape)
    return torch.from_numpy(b._device_array(np.int32, count).astype(np.int64)).view(*spec.shape)


def _store(b: bo, spec, value: torch.Tensor) -> None:
    count = int(np.prod(spec.shape))
    if spec.dtype == "bf16":
        b._device_array(np.uint16, count)[:] = to_bf16_bits(value).reshape(-1)
    else:
        b._device_array(np.float32, count)[:] = value.reshape(-1).numpy()


def _execute(e: KernelEntry, data: list[bo]) -> None:
    """Run the kernel's reference arithmetic on the device copies of its buffers."""
    named = {spec.name: (b, spec) for b, spec in zip(data, e.args)}
    get = lambda name: _arr(*named[name])  # noqa: E731
    if e.kind == "gemm":
        nb, kb, kt, nt = named["b"][1].shape
        b = get("b").permute(1, 2, 0, 3).reshape(kb * kt, nb * nt)  # untile [N/n, K/k, k, n] -> [K, N]
        out = ref.gemm_kernel(get("a"), b, get("bias"), bool(e.params.get("gelu")), kt, b_is_bf16=True)
        _store(*named["c"], out)
    elif e.kind == "attention":
        valid = int(get("params")[0])
        out = ref.attention_kernel(get("q"), get("k"), get("v"), valid_keys=valid)
        _store(*named["o"], out)
    elif e.kind == "layernorm":
        eps = float(get("params")[0])
        _store(*named["y"], ref.layernorm_kernel(get("x"), get("gamma"), get("beta"), eps))
    elif e.kind == "gelu":
        _store(*named["y"], ref.gelu_kernel(get("x")))
    else:
        raise RuntimeError(f"stand-in has no numerics for kernel kind {e.kind!r}")


# ---------------------------------------------------------------------------------------
# fake builds
# ---------------------------------------------------------------------------------------


def write_fake_build(root: str | Path, manifest) -> Path:
    """Write ``manifest.json`` plus a stand-in xclbin and an instruction stream per kernel."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest.root = root
    (root / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=1))
    rng = np.random.default_rng(0)
    for e in manifest.entries:
        meta = {
            "format": FORMAT,
            "uuid": str(_uuid.uuid5(_uuid.NAMESPACE_URL, e.id)),
            "kernels": [{"name": e.kernel, "num_args": FIRST_DATA_GROUP + len(e.args)}],
            "manifest_id": e.id,
        }
        (root / e.xclbin).write_text(json.dumps(meta))
        words = rng.integers(0, 2**32, size=64 + len(e.id), dtype=np.uint32)
        words.tofile(root / e.insts)
    return root


__all__ = [n for n in dir() if not n.startswith("_")]
_ = DTYPE_BYTES

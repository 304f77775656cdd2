"""A stand-in for XRT's ``pyxrt`` Python binding on the amdxdna driver, for tests without an NPU.

It mirrors the subset of XRT's ``src/python/pybind11/src/pyxrt.cpp`` (Xilinx/XRT @0cd4bf71)
that mlir-aie's host code (``python/utils/xrt.py``) and ``npu_whisper_app.devices.xrt`` use:
``device`` (+ ``get_info``), ``xclbin``, ``hw_context``, ``kernel`` (``group_id``, call ->
``run``), ``run`` (``start``/``wait``/``state``/``set_arg``), ``bo`` (flags, ``map``/``write``/
``read``/``sync``, sub-buffers), ``xclBOSyncDirection``, ``ert_cmd_state``, ``xrt_info_device``.

What it enforces, and where each rule comes from:

* **Hardware contexts and columns** (amd/xdna-driver ``drivers/accel/amdxdna``: ``npu1_regs.c``
  ``hwctx_limit = 6``, ``first_col = 1``; ``aie2_solver.c`` partition sharing): every
  ``hw_context`` goes through :func:`kernels.check.xdna.admit` with the contexts already open
  on the NPU (ours + ``OTHER_CONTEXTS``, held by "other processes"); a refused one raises like
  XRT does when ``DRM_IOCTL_AMDXDNA_CREATE_HWCTX`` fails. Contexts are released when closed or
  garbage-collected.
* **Asynchronous runs** (``xrt::run::start`` returns once the command is submitted;
  ``xrt::run::wait(timeout_ms)`` returns ``ERT_CMD_STATE_TIMEOUT`` if the timeout is exceeded and
  the run goes on, Xilinx/XRT ``src/runtime_src/core/include/xrt/xrt_kernel.h`` @02582ec6): a command executes on the context's
  own background queue thread; ``wait(timeout_ms)`` really waits, and a hung command
  (``fail(..., state="HANG")``, or a design whose fifos do not balance) times out.
* **Argument counts as pyxrt accepts them** (``pyxrt.cpp``, ``kernel.__call__``: each
  positional argument ``i`` is tried as ``set_arg(i, bo)`` then ``set_arg(i, int)``, failures
  are swallowed, then ``run.start()``): extra arguments are ignored, missing ones stay unset.
  The MLIR_AIE kernel of an IRON xclbin declares 8 arguments (opcode, instruction bo,
  instruction count, 5 buffers). A buffer the design reads or writes that is unset (or not
  a ``bo``) makes the command fail at the shim DMA: ``ERT_CMD_STATE_ERROR``.
* **Data moved by the design's own access patterns.** The xclbin's kernel picks what to do
  from the instruction stream it is given (argument 1; its words must match one of the
  family's ``insts`` files). The manifest entry of that stream carries the design's shim
  DMA tasks (offset/sizes/strides, recorded from the IRON design) and runtime parameters;
  the stand-in gathers each fill's elements from the device copy of the argument in DMA
  order, routes the objects the way the design's memtile links do (split / broadcast /
  forward / join), runs the reference arithmetic (``npu_whisper_app.devices.reference``) on
  exactly what each core receives, with each core's loop counts from its runtime
  parameters, and scatters the results back through the drain patterns. A host packing that
  disagrees with the design gives wrong numbers; fifos that do not balance hang.
* **Counter rows in the real format**: the attention design's 65th output row per (head,
  query tile) holds the core's cycle counter at start / end, its column and row and the
  magic ``MHA1`` (``kernels/aie2/mha.cc``); the stand-in's cycle counts come from a cost
  model (``ATTN_STEP_CYCLES``), not from a clock.
* Buffers: a host copy and a device copy; only ``sync`` moves bytes, so a forgotten sync
  gives stale data (and ``STRICT`` raises at start when an input's host bytes differ from
  what was synced); flags and ``group_id`` checked as before.

An "xclbin" here is a small JSON file (``{"format": FORMAT, "uuid", "kernels", "family",
"streams"}``) next to the ``manifest.json`` that describes it (:func:`write_fake_build`).
Knobs: ``DEVICES`` (env ``PYXRT_STANDIN_DEVICES``), ``NAME`` (what the driver reports, e.g.
``RyzenAI-npu1``), ``CLOCKS_MHZ``, ``OTHER_CONTEXTS``, ``fail(...)`` / env
``PYXRT_STANDIN_FAIL`` (``kind_or_id@nth=STATE``), ``STRICT``, ``NUMERICS`` (False: runs
complete without moving data, to count runs of big models quickly); counters in ``stats``;
``reset()`` restores defaults.
"""

from __future__ import annotations

import enum
import json
import os
import queue
import threading
import uuid as _uuid
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kernels.check.limits import LIMITS
from kernels.check.xdna import ContextRefused, admit
from npu_whisper_app.devices import reference as ref
from npu_whisper_app.devices.bf16 import from_bf16_bits, to_bf16_bits
from npu_whisper_app.devices.xrt_manifest import FIRST_DATA_GROUP, MANIFEST_NAME, KernelEntry, load_manifest

FORMAT = "pyxrt-standin-xclbin/2"
STANDIN = True
MLIR_AIE_NUM_ARGS = 8  # opcode, instr bo, instr count, 5 data buffers (mlir-aie's generated xclbin kernel)
ATTN_STEP_CYCLES = 6500  # cost model of one (64-query, 64-key) step (kernels/README.md), for the counters
ATTN_TILE_OVERHEAD = 1800  # begin + end of a tile
MHA_MAGIC = 0x4D484131  # "MHA1", kernels/aie2/mha.cc


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


class xrt_info_device(enum.IntEnum):  # a subset of xrt::info::device (xrt_device.h)
    bdf = 0
    name = 5
    platform = 12  # JSON; its "clocks" come from query::clock_freq_topology_raw


# ---------------------------------------------------------------------------------------
# knobs and counters
# ---------------------------------------------------------------------------------------

HANG = "HANG"  # a failure "state": the command never completes (wait times out)


@dataclass
class Failure:
    match: str  # manifest kind ("attention") or id
    at: int  # the n-th matching run (1-based) fails ...
    state: ert_cmd_state | str
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
    contexts: int = 0  # contexts created
    contexts_open: int = 0
    contexts_peak: int = 0
    contexts_refused: int = 0
    kernels: int = 0
    runs: Counter = field(default_factory=Counter)  # manifest (stream) id -> runs
    runs_by_kind: Counter = field(default_factory=Counter)
    alloc_log: list = field(default_factory=list)  # (size, flags, group)
    placements: list = field(default_factory=list)  # (start column, width) of our contexts, in creation order


DEVICES = int(os.environ.get("PYXRT_STANDIN_DEVICES", "1"))
#: the driver's vbnv of a Phoenix NPU (amd/xdna-driver src/driver/amdxdna/npu1_regs.c @5da962ee,
#: ``.vbnv = "RyzenAI-npu1"``; Strix: RyzenAI-npu4)
NAME = "RyzenAI-npu1"
#: what DRM_AMDXDNA_QUERY_CLOCK_METADATA gives (amd/xdna-driver src/shim/device.cpp @004a626a
#: clock_topology): the MP-NPU clock and the H clock (the AIE array's clock), in MHz; values: the
#: top DPM level of npu1_regs.c @5da962ee (NPU1_MPNPUCLK_FREQ_MAX 847, NPU1_HCLK_FREQ_MAX 1600)
CLOCKS_MHZ = {"MP-NPU Clock": 847, "H Clock": 1600}
OTHER_CONTEXTS: list[int] = []  # widths of contexts other processes hold on the NPU
STRICT = True
NUMERICS = True  # False: runs complete without arithmetic (attention still writes its counter rows)
FAILURES: list[Failure] = []
stats = Stats()
_OPEN: dict[int, int] = {}  # the driver's view of our open contexts: id -> width (no strong references)
_LOCK = threading.RLock()  # re-entrant: a context may be garbage-collected (__del__) while the lock is held


def _env_failures() -> list[Failure]:
    spec = os.environ.get("PYXRT_STANDIN_FAIL", "").strip()
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        target, _, state = item.partition("=")
        match, _, at = target.partition("@")
        out.append(Failure(match, int(at or 1), _state(state or "ERT_CMD_STATE_ERROR")))
    return out


def _state(state: str | ert_cmd_state) -> ert_cmd_state | str:
    if isinstance(state, ert_cmd_state) or state == HANG:
        return state
    return ert_cmd_state[state if state.startswith("ERT") else f"ERT_CMD_STATE_{state}"]


def reset() -> None:
    """Defaults: one Phoenix NPU, no other contexts, no failures, strict, zeroed counters."""
    global DEVICES, NAME, STRICT, NUMERICS, stats, CLOCKS_MHZ
    DEVICES = int(os.environ.get("PYXRT_STANDIN_DEVICES", "1"))
    NUMERICS = True
    NAME = "RyzenAI-npu1"
    CLOCKS_MHZ = {"MP-NPU Clock": 847, "H Clock": 1600}
    OTHER_CONTEXTS.clear()
    STRICT = True
    FAILURES[:] = _env_failures()
    with _LOCK:
        _OPEN.clear()
    stats = Stats()


def fail(match: str, at: int = 1, state: str | ert_cmd_state = "ERT_CMD_STATE_ERROR", times: int = 1) -> None:
    """Make the ``at``-th run of kernels matching ``match`` (kind or id) end in ``state``
    (``"HANG"``: never complete)."""
    FAILURES.append(Failure(match, at, _state(state), times))


def generation() -> str:
    """mlir-aie's device name for the NPU the driver reports (npu1: Phoenix/Hawk Point; npu4-6 -> npu2)."""
    return "npu2" if any(t in NAME for t in ("npu4", "npu5", "npu6")) else "npu1"


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
        self._entries: list[KernelEntry] = [e for e in manifest.entries if e.xclbin == path.name]
        if not self._entries:
            raise RuntimeError(f"xclbin '{filename}': not described by {path.parent / MANIFEST_NAME}")
        self._columns = max(e.columns for e in self._entries)
        self._device = self._entries[0].device

    def get_uuid(self) -> uuid:
        return self._uuid

    def get_kernels(self) -> list[xclbin.xclbinkernel]:
        return [xclbin.xclbinkernel(k["name"], k["num_args"]) for k in self._meta["kernels"]]

    def get_xsa_name(self) -> str:
        return self._device


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
        if key == xrt_info_device.name:
            return NAME
        if key == xrt_info_device.bdf:
            return "0000:c5:00.1"
        if key == xrt_info_device.platform:  # the shape of XRT's platform ptree (info_platform.cpp add_clock_info)
            clocks = [{"id": n, "description": "System", "freq_mhz": str(f)} for n, f in CLOCKS_MHZ.items()]
            return json.dumps({"platforms": [{"static_region": {"vbnv": NAME}, "clocks": clocks}]})
        return "NA"


class hw_context:
    """A hardware context: admitted by the driver's rules or refused."""

    def __init__(self, dev: device, xclbin_uuid: uuid, *rest) -> None:
        if not isinstance(dev, device) or not isinstance(xclbin_uuid, uuid):
            raise TypeError("hw_context(): incompatible constructor arguments")
        if xclbin_uuid not in dev._registered:
            raise RuntimeError(f"hw_context: xclbin {xclbin_uuid.to_string()} is not registered with the device")
        self.device = dev
        self.xclbin = dev._registered[xclbin_uuid]
        self._open = False
        gen = generation()
        if self.xclbin._device != gen:
            raise RuntimeError(f"hw_context: xclbin built for {self.xclbin._device}, the device is {gen} ({NAME})")
        with _LOCK:
            widths = list(OTHER_CONTEXTS) + list(_OPEN.values()) + [self.xclbin._columns]
            try:
                placed = admit(widths, LIMITS[gen])
            except ContextRefused as exc:
                stats.contexts_refused += 1
                raise RuntimeError(f"DRM_IOCTL_AMDXDNA_CREATE_HWCTX IOCTL failed: {exc}") from None
            self.start_col, self.num_cols = placed[-1]
            self._open = True
            _OPEN[id(self)] = self.xclbin._columns
            stats.contexts += 1
            stats.contexts_open = len(_OPEN)
            stats.contexts_peak = max(stats.contexts_peak, len(_OPEN))
            stats.placements.append(placed[-1])
        self._queue: queue.Queue[run | None] = queue.Queue()
        self._thread = threading.Thread(target=_serve, args=(weakref.ref(self), self._queue), daemon=True,
                                        name="pyxrt-standin-ctx")
        self._thread.start()
        weakref.finalize(self, _close_queue, self._queue)

    def _release(self) -> None:  # with _LOCK held
        if self._open:
            self._open = False
            _OPEN.pop(id(self), None)
            stats.contexts_open = len(_OPEN)

    def close(self) -> None:  # not in pyxrt: a context closes when its last reference goes; tests use it
        with _LOCK:
            self._release()

    def __del__(self) -> None:
        try:
            with _LOCK:
                self._release()
        except Exception:
            pass


def _close_queue(q: queue.Queue) -> None:
    q.put(None)


def _serve(ctx_ref, q: queue.Queue) -> None:
    """The context's command queue: one command at a time, in submission order."""
    while True:
        r = q.get()
        if r is None:
            return
        if not r._execute():
            return  # a hung command: the context's queue never moves again (as on the array)
        del r  # an idle queue must not keep its context alive


# ---------------------------------------------------------------------------------------
# buffer objects
# ---------------------------------------------------------------------------------------


class bo:
    class flags(enum.IntEnum):
        normal = 0
        cacheable = 1 << 24
        device_only = 1 << 28
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
            _dev, size, flg, group = args
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
            self._host = parent._host
            self._dev = parent._dev
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

    def _device_array(self, dtype, count: int) -> np.ndarray:
        return self._dev[self._span(count * np.dtype(dtype).itemsize)].view(dtype)


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
        self._streams = [(e, np.fromfile(ctx.xclbin._path.parent / e.insts, dtype=np.uint32)) for e in ctx.xclbin._entries]
        stats.kernels += 1

    def group_id(self, argno: int) -> int:
        if not 0 <= argno < self._num_args:
            raise RuntimeError(f"group_id: kernel '{self._name}' has no argument {argno}")
        if argno in (0, 2):
            raise RuntimeError(f"group_id: argument {argno} of '{self._name}' is a scalar")
        return GROUP_BASE + argno

    def __call__(self, *args) -> run:
        """pyxrt.cpp: ``set_arg(i, item)`` for every positional item (failures swallowed: extra
        arguments and unknown types are ignored), then ``start()``."""
        r = run(self)
        for i, item in enumerate(args):
            if i < self._num_args and isinstance(item, (bo, int, np.integer)):
                r._args[i] = item
        r.start()
        return r


class run:
    def __init__(self, k: kernel | None = None) -> None:
        self._kernel = k
        self._args: dict[int, object] = {}
        self._state = ert_cmd_state.ERT_CMD_STATE_NEW
        self._done = threading.Event()
        self._entry: KernelEntry | None = None
        self._data: list = []
        self._forced: ert_cmd_state | str | None = None
        self.error: str = ""  # why it failed (what the firmware's error log would say)

    def set_arg(self, i: int, item) -> None:
        if self._kernel is None or not 0 <= i < self._kernel._num_args:
            raise RuntimeError(f"set_arg: index {i} out of range")
        self._args[i] = item

    def state(self) -> ert_cmd_state:
        return self._state

    def wait(self, timeout_ms: int = 0) -> ert_cmd_state:
        """The command's state once it completes, or ERT_CMD_STATE_TIMEOUT when ``timeout_ms``
        (> 0) passes first; the command then stays in flight."""
        if not self._done.wait(None if not timeout_ms else timeout_ms / 1000.0):
            return ert_cmd_state.ERT_CMD_STATE_TIMEOUT
        return self._state

    # -- submission ----------------------------------------------------------------------
    def start(self) -> None:
        k = self._kernel
        if k is None:
            raise RuntimeError("run: no kernel")
        if not k._ctx._open:
            raise RuntimeError("run: the hardware context is closed")
        args = self._args
        if args.get(0) != 3:
            raise RuntimeError(f"{k._name}: opcode {args.get(0)!r}, expected 3 (transaction/instruction stream)")
        e = self._pick_stream(k, args.get(1), args.get(2))
        self._entry = e
        data = [args.get(FIRST_DATA_GROUP + i) for i in range(len(e.args))]
        for i, (b, spec) in enumerate(zip(data, e.args)):
            argno = FIRST_DATA_GROUP + i
            if not isinstance(b, bo):
                continue  # unset: the DMA faults when the command runs
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
        self._data = data
        stats.runs[e.id] += 1
        stats.runs_by_kind[e.kind] += 1
        for f in FAILURES:
            if f.match in (e.id, e.kind):
                n = stats.runs[e.id] if f.match == e.id else stats.runs_by_kind[e.kind]
                if f.at <= n < f.at + f.times:
                    self._forced = f.state
        self._state = ert_cmd_state.ERT_CMD_STATE_SUBMITTED
        k._ctx._queue.put(self)

    def _pick_stream(self, k: kernel, instr, n_instr) -> KernelEntry:
        if not isinstance(instr, bo):
            raise RuntimeError(f"{k._name}: argument 1 must be the instruction bo")
        if instr._flags != bo.flags.cacheable:
            raise RuntimeError(f"{k._name}: instruction bo must be cacheable, is {instr._flags.name}")
        if instr._group != k.group_id(1):
            raise RuntimeError(f"{k._name}: instruction bo must be on group_id(1)")
        for e, words in k._streams:
            if n_instr == words.size and instr._size >= 4 * words.size:
                dev = instr._dev[instr._span(4 * words.size)].view(np.uint32)
                if np.array_equal(dev, words):
                    return e
        raise RuntimeError(f"{k._name}: the instruction bo ({n_instr} words) holds none of the streams of "
                           f"{k._ctx.xclbin._path.name} on the device (not written, not synced, or a wrong count)")

    # -- execution (on the context's queue thread) ------------------------------------------
    def _execute(self) -> bool:
        """Run the command; False when it hangs."""
        self._state = ert_cmd_state.ERT_CMD_STATE_RUNNING
        e = self._entry
        assert e is not None
        try:
            if self._forced == HANG:
                return False  # never completes
            if self._forced is not None:
                self._state = self._forced
                self.error = "injected failure"
            elif any(not isinstance(b, bo) for b in self._data):
                missing = [s.name for b, s in zip(self._data, e.args) if not isinstance(b, bo)]
                self._state = ert_cmd_state.ERT_CMD_STATE_ERROR
                self.error = f"shim DMA fault: argument(s) {', '.join(missing)} not set (address 0)"
            else:
                try:
                    if NUMERICS or e.kind == "attention":  # counting mode still writes the counter rows
                        run_design(e, self._data)
                    self._state = ert_cmd_state.ERT_CMD_STATE_COMPLETED
                except Hang as h:
                    self.error = str(h)
                    return False  # the array deadlocks: the command never completes
            self._done.set()
        except Exception as exc:  # a stand-in bug must not look like a hang
            self.error = f"{type(exc).__name__}: {exc}"
            self._state = ert_cmd_state.ERT_CMD_STATE_ERROR
            self._done.set()
        return True


# ---------------------------------------------------------------------------------------
# the design's data movement + the cores' reference arithmetic
# ---------------------------------------------------------------------------------------


class Hang(Exception):
    """The design's fifos do not balance: a core waits for an object that never comes, or a
    DMA waits for room that is never made. On the array that is a hang."""


DT = {"bf16": np.uint16, "f32": np.float32, "i32": np.int32}


def tap_indices(tap: dict) -> np.ndarray:
    idx = np.array([tap["offset"]], dtype=np.int64)
    for size, stride in zip(tap["sizes"], tap["strides"]):
        idx = (idx[:, None] + np.arange(size, dtype=np.int64)[None, :] * stride).reshape(-1)
    return idx


def dims_indices(dims: list[list[int]], n: int) -> np.ndarray:
    """The element order a memtile/core DMA ``dims_to_stream`` walks over an ``n``-element
    object (outermost first; the outermost size is what the object length leaves)."""
    inner = int(np.prod([s for s, _ in dims[1:]])) if len(dims) > 1 else 1
    sizes = [n // inner] + [s for s, _ in dims[1:]]
    return tap_indices({"offset": 0, "sizes": sizes, "strides": [st for _, st in dims]})


def _streams_in(e: KernelEntry, data: list[bo]) -> dict[str, list[np.ndarray]]:
    """Every fill task in order: the elements its access pattern reads from the device copy,
    cut into the fifo's objects."""
    out: dict[str, list[np.ndarray]] = {}
    for t in e.taps:
        if t["io"] != "fill":
            continue
        spec, b = e.args[t["arg"]], data[t["arg"]]
        flat = b._device_array(DT[spec.dtype], int(np.prod(spec.shape)))
        idx = tap_indices(t)
        if idx.min() < 0 or idx.max() >= flat.size:
            raise RuntimeError(f"{e.id}: fill {t['fifo']} reaches outside argument {spec.name}")
        vals = flat[idx]
        out.setdefault(t["fifo"], []).extend(vals.reshape(-1, t["obj"]))
    return out


def _drain(e: KernelEntry, data: list[bo], produced: dict[str, list[np.ndarray]]) -> None:
    """Every drain task in order takes the next objects of its fifo and writes them through
    its access pattern into the device copy of its argument."""
    pos: dict[str, int] = {}
    for t in e.taps:
        if t["io"] != "drain":
            continue
        spec, b = e.args[t["arg"]], data[t["arg"]]
        flat = b._device_array(DT[spec.dtype], int(np.prod(spec.shape)))
        idx = tap_indices(t)
        n_obj = idx.size // t["obj"]
        objs = produced.get(t["fifo"], [])
        p = pos.get(t["fifo"], 0)
        if p + n_obj > len(objs):
            raise Hang(f"{e.id}: drain of {t['fifo']} waits for {p + n_obj} objects, the cores produce {len(objs)}")
        flat[idx] = np.concatenate([np.asarray(o).reshape(-1) for o in objs[p:p + n_obj]])
        pos[t["fifo"]] = p + n_obj
    for name, objs in produced.items():
        if pos.get(name, 0) != len(objs):
            raise Hang(f"{e.id}: {len(objs) - pos.get(name, 0)} objects of {name} are never drained")


def _take(stream: list[np.ndarray], n: int, what: str) -> np.ndarray:
    if len(stream) != n:
        raise Hang(f"{what}: the cores consume {n} objects, the runtime sequence delivers {len(stream)}")
    return np.stack(stream)


def run_design(e: KernelEntry, data: list[bo]) -> None:
    streams = _streams_in(e, data)
    produced = {"gemm": _gemm_cores, "attention": _attention_cores, "layernorm": _layernorm_cores}[e.kind](e, streams)
    _drain(e, data, produced)


def _f(bits: np.ndarray) -> torch.Tensor:
    return from_bf16_bits(np.ascontiguousarray(bits))


def _gemm_cores(e: KernelEntry, streams: dict) -> dict[str, list[np.ndarray]]:
    """gemm/gemm.py: core (row r, col c) gets memtile r's A stream (broadcast along the row)
    and memtile c's B stream (broadcast down the column); per output tile it takes K-steps A and
    B tiles, then the slab's epilogue block, whose first 2n bf16 slots *in L1* (after the
    memtile's dims_to_stream) are the f32 bias. Memtile c joins the 4 rows' C tiles."""
    rows, cols, m, k, n = 4, 4, e.tile["m"], e.tile["k"], e.tile["n"]
    par = {(r, c): e.rtps[f"rtp_{r}_{c}"][:3] for r in range(rows) for c in range(cols)}
    tiles, steps, gelu = par[(0, 0)]
    if any(v != [tiles, steps, gelu] for v in par.values()):
        raise RuntimeError(f"{e.id}: cores sharing a broadcast disagree on their loop counts")
    # a broadcast object is consumed once by every core it reaches: the stream must hold exactly one core's worth
    a_rows = [_f(_take(streams.get(f"A_L3L2_{r}", []), tiles * steps, f"{e.id} core row {r} A")).view(tiles, steps, m, k)
              for r in range(rows)]
    out: dict[str, list[np.ndarray]] = {}
    for c in range(cols):
        b = _take(streams.get(f"B_L3L2_{c}", []), tiles * (steps + 1), f"{e.id} column {c} B").reshape(tiles, steps + 1, k * n)
        b_t = _f(b[:, :steps]).view(tiles, steps, k, n)
        l1_epi = np.ascontiguousarray(b[:, steps][:, dims_indices(e.dims[f"B_L2L1_{c}"], k * n)])  # the epilogue buffer in L1
        bias = torch.from_numpy(l1_epi[:, : 2 * n].copy().view(np.float32))  # [tiles, n]: its first 2n bf16 slots
        tiles_c = []
        for r in range(rows):
            acc = torch.zeros(tiles, m, n)
            for s in range(steps):  # K in ascending 64-deep steps, fp32 accumulator resident in L1
                acc = torch.baddbmm(acc, a_rows[r][:, s], b_t[:, s])
            acc = acc + bias[:, None, :]
            if gelu:
                acc = ref.gelu_tanh(acc)
            tiles_c.append(acc.numpy())
        # join: object j = the 4 rows' j-th tiles, one after the other
        out[f"C_L2L3_{c}"] = [np.concatenate([tiles_c[r][j] for r in range(rows)]) for j in range(tiles)]
    return out


def _attention_cores(e: KernelEntry, streams: dict) -> dict[str, list[np.ndarray]]:
    """attention/attention.py: per column, each round's Q object (4 x 64 rows) is split to the 4
    cores; the K/V objects are broadcast to all 4 (K then V per key tile); each core runs the
    flash-attention arithmetic over the round's key tiles, masks keys >= valid_keys, writes 64
    rows + the timing row; memtile c joins the 4 cores' outputs per round."""
    rows, cols, tq, d = 4, 4, 64, e.shape["D"]
    out: dict[str, list[np.ndarray]] = {}
    for c in range(cols):
        valid, nt, rounds = e.rtps[f"rtp_{c}_0"][:3]
        for r in range(rows):
            if e.rtps[f"rtp_{c}_{r}"][:3] != [valid, nt, rounds]:
                raise RuntimeError(f"{e.id}: the cores of column {c} disagree on their parameters")
        if rounds == 0:
            continue
        q = _take(streams.get(f"Q_L3L2_{c}", []), rounds, f"{e.id} column {c} Q")
        kv = _take(streams.get(f"KV_L3L2_{c}", []), rounds * 2 * nt, f"{e.id} column {c} K/V")
        qt = _f(q).view(rounds, rows, tq, d)  # core r takes rows r*64.. of the round's object
        kv = _f(kv).view(rounds, nt, 2, tq, d)
        k_all = kv[:, :, 0].reshape(rounds, 1, nt * tq, d)
        v_all = kv[:, :, 1].reshape(rounds, 1, nt * tq, d)
        o = ref.attention_kernel(qt, k_all, v_all, valid_keys=valid) if NUMERICS else torch.zeros(rounds, rows, tq, d)
        o16 = to_bf16_bits(o).reshape(rounds, rows, tq, d)
        timing = np.zeros((rounds, rows, d), np.uint16)
        steps = -(-valid // tq)
        for r in range(rows):  # each core's own cycle counter, running across its rounds
            t0 = 1000 + 37 * (c * rows + r)  # cores start a little apart (not synchronised)
            for i in range(rounds):
                t1 = t0 + ATTN_TILE_OVERHEAD + steps * ATTN_STEP_CYCLES + 97 * ((i * 7 + r * 3 + c) % 5)
                w = timing[i, r].view(np.uint32)
                w[0], w[1], w[2], w[3] = t0 & 0xFFFFFFFF, t0 >> 32, t1 & 0xFFFFFFFF, t1 >> 32
                w[4], w[5], w[6] = c, 2 + r, MHA_MAGIC
                t0 = t1 + 200
        full = np.concatenate([o16, timing[:, :, None, :]], axis=2)  # [rounds, 4, 65, d]
        out[f"O_L2L3_{c}"] = [full[i].reshape(-1) for i in range(rounds)]
    return out


def _layernorm_cores(e: KernelEntry, streams: dict) -> dict[str, list[np.ndarray]]:
    """layernorm/layernorm.py: per column, gamma|beta|eps broadcast to 4 cores once; each 16-row
    object split 4 rows per core; memtile c joins the outputs."""
    rows, cols, R = 4, 4, 4
    out: dict[str, list[np.ndarray]] = {}
    for c in range(cols):
        nn, steps = e.rtps[f"rtp_{c}_0"][:2]
        p = _take(streams.get(f"P_L3L2_{c}", []), 1, f"{e.id} column {c} params")[0]  # f32
        x = _take(streams.get(f"X_L3L2_{c}", []), steps, f"{e.id} column {c} X")
        gamma, beta, eps = torch.from_numpy(p[:nn].copy()), torch.from_numpy(p[nn:2 * nn].copy()), float(p[2 * nn])
        y = ref.layernorm_kernel(_f(x).view(steps * rows * R, nn), gamma, beta, eps)
        y16 = to_bf16_bits(y).reshape(steps, rows * R * nn)
        out[f"Y_L2L3_{c}"] = list(y16)
    return out


# ---------------------------------------------------------------------------------------
# fake builds
# ---------------------------------------------------------------------------------------


def write_fake_build(root: str | Path, manifest) -> Path:
    """Write ``manifest.json`` plus one stand-in xclbin per family and an instruction stream
    per shape."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest.root = root
    (root / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=1))
    rng = np.random.default_rng(0)
    for x in manifest.xclbins():
        entries = [e for e in manifest.entries if e.xclbin == x]
        meta = {
            "format": FORMAT,
            "uuid": str(_uuid.uuid5(_uuid.NAMESPACE_URL, x)),
            "kernels": [{"name": entries[0].kernel, "num_args": MLIR_AIE_NUM_ARGS}],
            "family": x,
            "streams": [e.id for e in entries],
        }
        (root / x).write_text(json.dumps(meta))
    for e in manifest.entries:
        words = rng.integers(0, 2**32, size=64 + len(e.id), dtype=np.uint32)
        words.tofile(root / e.insts)
    return root


__all__ = [n for n in dir() if not n.startswith("_")]

"""The recording core of the IRON double: ObjectFifo, Worker, Kernel, GlobalBuffer, Runtime,
Program. Signatures follow mlir-aie v1.1.x ``python/iron/`` (see kernels/README.md)."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..helpers.dialects.ext.scf import TRACE, LoopIndex
from ..helpers.taplib import TensorAccessPattern
from .device import AnyComputeTile, AnyMemTile, AnyShimTile, Device, Tile


def nd_shape(t) -> tuple[int, ...]:
    return tuple(t.__args__[0])


def nd_dtype(t) -> np.dtype:
    return np.dtype(t.__args__[1].__args__[0])


def nd_bytes(t) -> int:
    return int(np.prod(nd_shape(t))) * nd_dtype(t).itemsize


# ------------------------------------------------------------------------------ values


@dataclass
class Scalar:
    """A scalar loaded on the core (e.g. a runtime parameter) of a given dtype."""

    dtype: np.dtype


@dataclass
class Element:
    """An acquired ObjectFifo buffer as the core sees it."""

    fifo: ObjectFifo

    @property
    def obj_type(self):
        return self.fifo.obj_type

    def __getitem__(self, i) -> Scalar:
        return Scalar(nd_dtype(self.fifo.obj_type))


# ------------------------------------------------------------------------------ kernels


class Kernel:
    """``Kernel(name, bin_name, arg_types=[])`` (mlir-aie ``python/iron/kernel.py``)."""

    def __init__(self, name: str, bin_name: str, arg_types: Sequence = ()) -> None:
        self.name, self.bin_name, self.arg_types = name, bin_name, list(arg_types)

    def __call__(self, *args) -> None:
        if len(args) != len(self.arg_types):
            raise TypeError(f"kernel {self.name} takes {len(self.arg_types)} arguments, got {len(args)}")
        for i, (a, t) in enumerate(zip(args, self.arg_types)):
            _check_arg(self.name, i, a, t)
        if CURRENT_WORKER is None:
            raise RuntimeError(f"kernel {self.name} called outside a Worker's core function")
        CURRENT_WORKER.log.append(("call", self, tuple(TRACE)))


def _check_arg(name: str, i: int, a: Any, t: Any) -> None:
    if hasattr(t, "__args__"):  # an np.ndarray[...] type: a buffer of that many bytes and dtype
        if isinstance(a, Element):
            got = a.fifo.obj_type
        elif isinstance(a, GlobalBuffer):
            got = a.type
        else:
            raise TypeError(f"kernel {name} argument {i}: expected a buffer {t}, got {type(a).__name__}")
        if nd_bytes(got) != nd_bytes(t) or nd_dtype(got) != nd_dtype(t):
            raise TypeError(f"kernel {name} argument {i}: buffer {nd_shape(got)} {nd_dtype(got)} where {nd_shape(t)} {nd_dtype(t)} is declared")
        return
    want = np.dtype(t)
    if isinstance(a, LoopIndex):
        if LENIENT:
            return
        raise TypeError(f"kernel {name} argument {i}: an scf.for index value passed where {want} is declared "
                        "(func.call operand type mismatch: index vs i32; IRON converts only Python ints)")
    if isinstance(a, Scalar):
        if a.dtype != want:
            raise TypeError(f"kernel {name} argument {i}: {a.dtype} value where {want} is declared")
        return
    if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, float, np.integer, np.floating)):
        raise TypeError(f"kernel {name} argument {i}: {type(a).__name__} where {want} is declared")


# ------------------------------------------------------------------------------ buffers


class GlobalBuffer:
    """``GlobalBuffer(type=None, initial_value=None, name=None, use_write_rtp=False)``."""

    def __init__(self, type=None, initial_value=None, name: str | None = None, use_write_rtp: bool = False) -> None:
        if type is None and initial_value is None:
            raise ValueError("GlobalBuffer needs a type or an initial value")
        self.type = type if type is not None else np.ndarray[initial_value.shape, np.dtype[initial_value.dtype]]
        self.initial_value, self.name, self.use_write_rtp = initial_value, name, use_write_rtp

    @property
    def nbytes(self) -> int:
        return nd_bytes(self.type)

    def __getitem__(self, i) -> Scalar:
        return Scalar(nd_dtype(self.type))

    def __setitem__(self, i, v) -> None:
        if CURRENT_WORKER is not None:
            CURRENT_WORKER.log.append(("store", self, tuple(TRACE)))


class WorkerRuntimeBarrier:
    """A lock the runtime sequence sets and a worker waits on (``rt.set_barrier``)."""

    def __init__(self, initial_value: int = 0) -> None:
        self.initial_value = initial_value

    def wait_for_value(self, value: int) -> None:
        if CURRENT_WORKER is not None:
            CURRENT_WORKER.log.append(("barrier", self, tuple(TRACE)))

    def release_with_value(self, value: int) -> None:
        self.wait_for_value(value)


# ------------------------------------------------------------------------------ object fifos


class ObjectFifo:
    """``ObjectFifo(obj_type, depth=2, name=None, dims_to_stream=None,
    dims_from_stream_per_cons=None, plio=False)`` (``python/iron/dataflow/objectfifo.py``)."""

    _n = 0

    def __init__(self, obj_type, depth: int | None = 2, name: str | None = None, dims_to_stream=None,
                 dims_from_stream_per_cons=None, plio: bool = False) -> None:
        if isinstance(depth, int) and depth < 1:
            raise ValueError(f"Default ObjectFifo depth must be > 0, but got {depth}")
        self.obj_type, self.depth = obj_type, depth
        if name is None:
            name, ObjectFifo._n = f"of{ObjectFifo._n}", ObjectFifo._n + 1
        self.name = name
        self.dims_to_stream = dims_to_stream
        self._prod: ObjectFifoHandle | None = None
        self._cons: list[ObjectFifoHandle] = []

    @property
    def nbytes(self) -> int:
        return nd_bytes(self.obj_type)

    def prod(self, depth: int | None = None) -> ObjectFifoHandle:
        if self._prod is None:
            self._prod = ObjectFifoHandle(self, True, depth or self.depth)
        return self._prod

    def cons(self, depth: int | None = None, dims_from_stream=None) -> ObjectFifoHandle:
        h = ObjectFifoHandle(self, False, depth or self.depth)
        self._cons.append(h)
        return h

    def __repr__(self) -> str:
        return f"ObjectFifo({self.name})"


class ObjectFifoHandle:
    def __init__(self, of: ObjectFifo, is_prod: bool, depth: int) -> None:
        self.fifo, self.is_prod, self.depth = of, is_prod, depth
        self.endpoint: Any = None  # Worker | Link | RuntimeEndpoint

    @property
    def name(self) -> str:
        return self.fifo.name

    def acquire(self, num_elem: int):
        if self.depth < num_elem:
            raise ValueError(f"Number of elements to acquire {num_elem} must be smaller than depth {self.depth}")
        if CURRENT_WORKER is not None:
            CURRENT_WORKER.log.append(("acquire", self, tuple(TRACE), num_elem))
        return Element(self.fifo) if num_elem == 1 else [Element(self.fifo) for _ in range(num_elem)]

    def release(self, num_elem: int) -> None:
        if self.depth < num_elem:
            raise ValueError(f"Number of elements to release {num_elem} must be smaller than depth {self.depth}")
        if CURRENT_WORKER is not None:
            CURRENT_WORKER.log.append(("release", self, tuple(TRACE), num_elem))

    def _link(self, kind, offsets, placement, depths, obj_types, names, dims_to_stream) -> list[ObjectFifo]:
        n = len(offsets)
        depths = depths or [self.depth] * n
        obj_types = obj_types or [self.fifo.obj_type] * n
        names = names or [f"{self.fifo.name}_{kind}{i}" for i in range(n)]
        dims = dims_to_stream or [None] * n
        if not len(depths) == len(obj_types) == len(names) == len(dims) == n:
            raise ValueError("Number of depths/obj_types/names/dims does not match number of offsets")
        subs = [ObjectFifo(obj_types[i], depth=depths[i], name=names[i], dims_to_stream=dims[i]) for i in range(n)]
        if kind == "join":
            link = Link(kind, [s.cons() for s in subs], [self], placement, offsets)
        else:
            link = Link(kind, [self], [s.prod() for s in subs], placement, offsets)
        LINKS.append(link)
        return subs

    def split(self, offsets, placement=AnyMemTile, depths=None, obj_types=None, names=None, dims_to_stream=None,
              dims_from_stream=None, plio=False) -> list[ObjectFifo]:
        if self.is_prod:
            raise ValueError("Cannot split() a prod ObjectFifoHandle")
        return self._link("split", offsets, placement, depths, obj_types, names, dims_to_stream)

    def join(self, offsets, placement=AnyMemTile, depths=None, obj_types=None, names=None, dims_to_stream=None,
             dims_from_stream=None, plio=False) -> list[ObjectFifo]:
        if not self.is_prod:
            raise ValueError("Cannot join() a cons ObjectFifoHandle")
        return self._link("join", offsets, placement, depths, obj_types, names, dims_to_stream)

    def forward(self, placement=AnyMemTile, obj_type=None, depth=None, name=None, dims_to_stream=None,
                dims_from_stream=None, plio=False) -> ObjectFifo:
        if self.is_prod:
            raise ValueError("Cannot forward a prod ObjectFifoHandle")
        return self._link("forward", [0], placement, [depth] if depth else None, [obj_type] if obj_type else None,
                          [name] if name else None, [dims_to_stream] if dims_to_stream else None)[0]


@dataclass
class Link:
    """A memtile split / join / forward (``ObjectFifoLink``)."""

    kind: str
    srcs: list[ObjectFifoHandle]
    dsts: list[ObjectFifoHandle]
    tile: Tile
    offsets: list[int]

    def __post_init__(self) -> None:
        for h in self.srcs + self.dsts:
            h.endpoint = self


LINKS: list[Link] = []
CURRENT_WORKER: Worker | None = None
#: for showing what an API-broken design would also hit: accept the old designs'
#: ``offset=/sizes=/strides=`` keywords and loop indices as scalars (never set by the check itself)
LENIENT = False


# ------------------------------------------------------------------------------ workers


class Worker:
    """``Worker(core_fn, fn_args=[], placement=AnyComputeTile, while_true=True, stack_size=None,
    allocation_scheme=None, trace=None, trace_events=None)`` (``python/iron/worker.py``)."""

    def __init__(self, core_fn: Callable | None, fn_args: list = [], placement=AnyComputeTile, while_true: bool = True,  # noqa: B006  (IRON's own signature; never mutated)
                 stack_size: int | None = None, allocation_scheme: str | None = None, trace: int | None = None,
                 trace_events: list | None = None) -> None:
        self.core_fn, self.fn_args, self.tile = core_fn, list(fn_args), placement
        self.while_true, self.stack_size, self.trace = while_true, stack_size, trace
        self.log: list = []
        bins = set()
        for a in self.fn_args:
            if isinstance(a, ObjectFifo):
                raise ValueError("Cannot give an ObjectFifo directly to a worker; must give an ObjectFifoHandle")
            if isinstance(a, ObjectFifoHandle):
                a.endpoint = self
            if isinstance(a, Kernel):
                bins.add(a.bin_name)
        if len(bins) > 1:
            raise ValueError(f"Currently, only one binary per works is supported. Found: {bins}")
        self.link_with = next(iter(bins), None)

    @property
    def fifos(self) -> list[ObjectFifoHandle]:
        return [a for a in self.fn_args if isinstance(a, ObjectFifoHandle)]

    @property
    def buffers(self) -> list[GlobalBuffer]:
        return [a for a in self.fn_args if isinstance(a, GlobalBuffer)]

    @property
    def kernels(self) -> list[Kernel]:
        return [a for a in self.fn_args if isinstance(a, Kernel)]

    def trace_body(self) -> None:
        global CURRENT_WORKER
        CURRENT_WORKER, self.log = self, []
        try:
            if self.core_fn is not None:
                self.core_fn(*self.fn_args)
        finally:
            CURRENT_WORKER = None


# ------------------------------------------------------------------------------ runtime


@dataclass
class RuntimeData:
    arr_type: Any
    index: int

    @property
    def shape(self) -> tuple[int, ...]:
        return nd_shape(self.arr_type)

    @property
    def dtype(self) -> np.dtype:
        return nd_dtype(self.arr_type)

    def default_tap(self) -> TensorAccessPattern:
        n = int(np.prod(self.shape))
        return TensorAccessPattern(self.shape, 0, [1, 1, 1, n], [0, 0, 0, 1])


@dataclass
class RuntimeEndpoint:
    tile: Tile


@dataclass
class TaskGroup:
    index: int


@dataclass
class DMATask:
    handle: ObjectFifoHandle
    data: RuntimeData
    tap: TensorAccessPattern
    task_group: TaskGroup | None
    wait: bool

    @property
    def is_fill(self) -> bool:
        return self.handle.is_prod

    @property
    def tile(self) -> Tile:
        return self.handle.endpoint.tile


class Runtime:
    """``Runtime(strict_task_groups=True)`` (``python/iron/runtime/runtime.py``)."""

    def __init__(self, strict_task_groups: bool = True) -> None:
        self._rt_data: list[RuntimeData] = []
        self.tasks: list = []  # DMATask | ("finish", TaskGroup) | ("start", Worker) | ("inline", fn) | ("barrier", b, v)
        self.workers: list[Worker] = []
        self._open: list[TaskGroup] = []
        self._tg = 0
        self.trace_size: int | None = None

    @contextlib.contextmanager
    def sequence(self, *input_types):
        self._rt_data = [RuntimeData(t, i) for i, t in enumerate(input_types)]
        try:
            yield self._rt_data[0] if len(self._rt_data) == 1 else tuple(self._rt_data)
        finally:
            if self._open and sys.exc_info()[0] is None:  # (the real one raises here too, masking the cause)
                raise ValueError(f"Failed to close task groups: {self._open}")

    def task_group(self) -> TaskGroup:
        tg = TaskGroup(self._tg)
        self._tg += 1
        self._open.append(tg)
        return tg

    def finish_task_group(self, task_group: TaskGroup) -> None:
        self._open.remove(task_group)
        self.tasks.append(("finish", task_group))

    def _task(self, handle, data, tap, task_group, wait, placement, **legacy) -> None:
        if legacy:
            if not LENIENT:
                raise TypeError(f"Runtime.fill/drain() got an unexpected keyword argument {next(iter(legacy))!r}")
            sizes, strides = legacy.get("sizes"), legacy.get("strides") or None
            if strides is None:  # linear: strides from the sizes
                strides = [int(np.prod(sizes[i + 1:])) for i in range(len(sizes))]
                strides[0] = 0
            tap = TensorAccessPattern(data.shape, legacy.get("offset", 0), sizes, strides)
        if data not in self._rt_data:
            raise ValueError(f"{data} is not a RuntimeData object generated by sequence()")
        handle.endpoint = RuntimeEndpoint(placement)
        self.tasks.append(DMATask(handle, data, tap if tap is not None else data.default_tap(), task_group, wait))

    def fill(self, in_fifo: ObjectFifoHandle, source: RuntimeData, tap: TensorAccessPattern | None = None,
             task_group: TaskGroup | None = None, wait: bool = False, placement=AnyShimTile, **legacy) -> None:
        self._task(in_fifo, source, tap, task_group, wait, placement, **legacy)

    def drain(self, out_fifo: ObjectFifoHandle, dest: RuntimeData, tap: TensorAccessPattern | None = None,
              task_group: TaskGroup | None = None, wait: bool = False, placement=AnyShimTile, **legacy) -> None:
        self._task(out_fifo, dest, tap, task_group, wait, placement, **legacy)

    def start(self, *args: Worker) -> None:
        for w in args:
            if not isinstance(w, Worker):
                raise ValueError("Runtime can only start Worker objects")
            self.workers.append(w)
            self.tasks.append(("start", w))

    def inline_ops(self, inline_func: Callable, inline_args: list) -> None:
        self.tasks.append(("inline", inline_func, inline_args))

    def set_barrier(self, barrier: WorkerRuntimeBarrier, value: int) -> None:
        self.tasks.append(("barrier", barrier, value))

    def enable_trace(self, trace_size: int = None, trace_offset: int = None, workers: list | None = None,
                     ddr_id: int = None, coretile_events: list | None = None, coremem_events: list | None = None,
                     memtile_events: list | None = None, shimtile_events: list | None = None) -> None:
        self.trace_size = trace_size

    @property
    def dma_tasks(self) -> list[DMATask]:
        return [t for t in self.tasks if isinstance(t, DMATask)]


# ------------------------------------------------------------------------------ program


@dataclass
class Design:
    """What ``Program.resolve_program`` returns in the double: the placed design."""

    device: Device
    runtime: Runtime
    workers: list[Worker]
    links: list[Link]
    fifos: list[ObjectFifo] = field(default_factory=list)


class Program:
    def __init__(self, device: Device, rt: Runtime) -> None:
        self.device, self.rt = device, rt

    def resolve_program(self, placer=None) -> Design:
        links = list(LINKS)
        LINKS.clear()
        if placer is not None:
            placer.make_placement(self.device, self.rt, self.rt.workers, links)
        for w in self.rt.workers:
            if w.tile is AnyComputeTile or w.tile.col is None:
                raise ValueError("Must place Worker before it can be resolved.")
            w.trace_body()
        fifos: dict[int, ObjectFifo] = {}
        for w in self.rt.workers:
            for h in w.fifos:
                fifos[id(h.fifo)] = h.fifo
        for link in links:
            for h in link.srcs + link.dsts:
                fifos[id(h.fifo)] = h.fifo
        for t in self.rt.dma_tasks:
            fifos[id(t.handle.fifo)] = t.handle.fifo
        for f in fifos.values():
            if f._prod is None or not f._cons:
                raise ValueError(f"ObjectFifo {f.name} needs a producer and a consumer")
        return Design(self.device, self.rt, list(self.rt.workers), links, list(fifos.values()))

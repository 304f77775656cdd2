"""Builds, caches and loads the cpu's compiled kernels.

- ``cpu_attention.cpp``: the cpu device's attention (timed head x query-tile items);
- ``cpu_decoder_f16.cpp``: the fast decoder's per-token products and cross-attention on fp16 copies
  (with ``cpu_cross_q8.h`` and ``cpu_linear_q8.h``: the batched mode's int8 ones);
- ``cpu_int8.cpp``: the int8 gemm's per-row quantisation and epilogue (precision int8).

Each is compiled once per machine with torch's own extension builder (g++ and ninja)
into the user cache directory, keyed by the source, torch, Python, compiler flags and the
CPU's instruction set, so a cache shared between machines never loads a build for
another CPU. ``scripts/setup.sh`` builds them at set-up; otherwise the first use builds
them (about 40 s each). Where one cannot be built (no compiler, an exotic torch) its
user runs the same arithmetic as torch calls from Python, and ``status()`` says why.
``NPU_WHISPER_NATIVE=0`` turns them off (for A/B benchmarks).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import platformdirs
import torch

from .cpuinfo import cpu_signature

log = logging.getLogger(__name__)

# -fopenmp: at::parallel_for then runs on torch's own OpenMP pool (the same libgomp.so.1,
# loaded once by soname), the threads its gemms use.
CFLAGS = ["-O3", "-march=native", "-std=c++17", "-fopenmp"]
LDFLAGS = ["-fopenmp"]


def enabled() -> bool:
    return os.environ.get("NPU_WHISPER_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


class NativeKernel:
    """One C++ source built into a Python module on first use (thread-safe, once)."""

    def __init__(self, name: str, source: Path, check: Callable[[ModuleType], None] | None = None, cflags: list[str] | None = None) -> None:
        self.name = name
        self.source = source
        self.check = check
        self.cflags = list(cflags or CFLAGS)
        self._lock = threading.Lock()
        self._loaded: ModuleType | None = None
        self._status: str | None = None

    def build_key(self) -> str:
        h = hashlib.sha1()
        headers = sorted(self.source.parent.glob("*.h"))  # included by the sources
        for part in (self.source.read_bytes(), *(p.read_bytes() for p in headers), torch.__version__.encode(), sys.version.encode(), " ".join(self.cflags + LDFLAGS).encode(),
                     platform.machine().encode(), cpu_signature().encode()):
            h.update(part)
            h.update(b"\0")
        return h.hexdigest()[:12]

    def build_dir(self) -> Path:
        return Path(platformdirs.user_cache_dir("npu-whisper")) / "kernels" / f"{self.name}-{self.build_key()}"

    def _build(self) -> ModuleType:
        from torch.utils import cpp_extension  # imported late: it pulls in setuptools

        where = self.build_dir()
        where.mkdir(parents=True, exist_ok=True)
        # torch's builder waits, without end, while a ``lock`` file exists in the build
        # folder; a build that was killed leaves it behind and every later start would
        # hang. Our builders hold an OS lock (released when a process dies) while they
        # build, so a ``lock`` file found while holding it is such a leftover.
        with open(where / ".build.flock", "w") as baton:
            fcntl.flock(baton, fcntl.LOCK_EX)
            leftover = where / "lock"
            if leftover.exists():
                log.warning("removing a build lock left by a killed build: %s", leftover)
                leftover.unlink(missing_ok=True)
            module = cpp_extension.load(
                name=f"npuw_{self.name}_{self.build_key()}",
                sources=[str(self.source)],
                extra_cflags=list(self.cflags),  # copies: torch appends to the lists it is given
                extra_ldflags=list(LDFLAGS),
                build_directory=str(where),
                verbose=False,
            )
        if self.check is not None:
            self.check(module)
        return module

    def load(self) -> ModuleType | None:
        """The compiled module, building it on first use; None where it can't be had."""
        if not enabled():
            return None
        with self._lock:
            if self._loaded is None and self._status is None:
                try:
                    self._loaded = self._build()
                    self._status = f"compiled ({self.build_dir()})"
                except Exception as exc:  # a missing compiler, ninja or header: fall back, say why
                    first = str(exc).strip().splitlines()
                    self._status = f"not built: {type(exc).__name__}: {first[-1] if first else ''}"[:300]
                    log.warning("cpu kernel %s %s; using torch calls from Python", self.name, self._status)
            return self._loaded

    def status(self) -> str:
        """One line for ``npu-whisper devices``: whether the kernel is in use, or why not."""
        if not enabled():
            return "off (NPU_WHISPER_NATIVE=0)"
        self.load()
        return self._status or "not built"


def _needs_blas(module: ModuleType) -> None:
    if not module.has_blas():
        raise RuntimeError("this torch build exports no BLAS sgemm_")


HERE = Path(__file__).parent
ATTENTION = NativeKernel("cpu_attention", HERE / "cpu_attention.cpp", _needs_blas)
DECODER_F16 = NativeKernel("cpu_decoder_f16", HERE / "cpu_decoder_f16.cpp")
INT8 = NativeKernel("cpu_int8", HERE / "cpu_int8.cpp")


def load_attention_kernel() -> ModuleType | None:
    return ATTENTION.load()


def kernel_status() -> str:
    return ATTENTION.status()


def attention_bf16_available() -> bool:
    """True when the attention kernel is built with its bf16 products and the CPU has
    AVX512_BF16 (what ``precision="bf16"`` then uses for attention)."""
    kernel = ATTENTION.load()
    return kernel is not None and bool(kernel.has_bf16())


def load_decoder_kernel() -> ModuleType | None:
    return DECODER_F16.load()


def batched_decoder_summary() -> str:
    """One line for ``devices`` / ``bench``: the numerics of the batched mode's decoder
    (``model.fast_decoder``: int8 copies of the cross keys/values with AVX-512, int8
    products with AVX512-VNNI; openai-whisper's loop keeps the exact fp16 ones)."""
    kernel = DECODER_F16.load()
    if kernel is None or kernel.isa() != "avx512f":
        return "fp32 products, fp32 cross-attention (the compiled step needs AVX-512)"
    if kernel.has_q8():
        return "int8 cross keys/values, int8 products (AVX512-VNNI vpdpbusd, per-channel weights, per-64 activations)"
    return "int8 cross keys/values, fp16 products (no AVX512-VNNI)"


def load_int8_kernel() -> ModuleType | None:
    """The int8 gemm's row quantisation and epilogue (precision int8)."""
    return INT8.load()

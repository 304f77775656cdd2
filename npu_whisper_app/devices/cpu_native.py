"""Builds, caches and loads the cpu device's compiled attention kernel (``cpu_attention.cpp``).

The kernel is compiled once per machine with torch's own extension builder (g++ and
ninja) into the user cache directory, keyed by the source, torch, Python, compiler flags
and the CPU's instruction set, so a cache shared between machines never loads a build
for another CPU. ``scripts/setup.sh`` builds it at set-up; otherwise the first cpu device
builds it (about 40 s). Where it cannot be built (no compiler, an exotic torch) the cpu
device runs the same tiles as torch calls from Python, and :func:`kernel_status` says why.
``NPU_WHISPER_NATIVE=0`` turns it off (for A/B benchmarks).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
import threading
from pathlib import Path
from types import ModuleType

import platformdirs
import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("cpu_attention.cpp")
# -fopenmp: at::parallel_for then runs on torch's own OpenMP pool (the same libgomp.so.1,
# loaded once by soname), the threads its gemms use.
CFLAGS = ["-O3", "-march=native", "-std=c++17", "-fopenmp"]
LDFLAGS = ["-fopenmp"]

_lock = threading.Lock()
_loaded: ModuleType | None = None
_status: str | None = None


def enabled() -> bool:
    return os.environ.get("NPU_WHISPER_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_key() -> str:
    h = hashlib.sha1()
    for part in (SOURCE.read_bytes(), torch.__version__.encode(), sys.version.encode(), " ".join(CFLAGS + LDFLAGS).encode(),
                 platform.machine().encode(), _cpu_signature().encode()):
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:12]


def build_dir() -> Path:
    return Path(platformdirs.user_cache_dir("npu-whisper")) / "kernels" / f"cpu_attention-{build_key()}"


def _build() -> ModuleType:
    from torch.utils import cpp_extension  # imported late: it pulls in setuptools

    key = build_key()
    where = build_dir()
    where.mkdir(parents=True, exist_ok=True)
    module = cpp_extension.load(
        name=f"npuw_cpu_attention_{key}",
        sources=[str(SOURCE)],
        extra_cflags=CFLAGS,
        extra_ldflags=LDFLAGS,
        build_directory=str(where),
        verbose=False,
    )
    if not module.has_blas():
        raise RuntimeError("this torch build exports no BLAS sgemm_")
    return module


def load_attention_kernel() -> ModuleType | None:
    """The compiled kernel module, building it on first use; None where it can't be had."""
    global _loaded, _status
    if not enabled():
        return None
    with _lock:
        if _loaded is None and _status is None:
            try:
                _loaded = _build()
                _status = f"compiled ({build_dir()})"
            except Exception as exc:  # a missing compiler, ninja or header: fall back, say why
                first = str(exc).strip().splitlines()
                _status = f"not built: {type(exc).__name__}: {first[-1] if first else ''}"[:300]
                log.warning("cpu attention kernel %s; using torch calls from Python", _status)
        return _loaded


def kernel_status() -> str:
    """One line for ``npu-whisper devices``: whether the compiled kernel is in use, or why not."""
    if not enabled():
        return "off (NPU_WHISPER_NATIVE=0)"
    load_attention_kernel()
    return _status or "not built"

"""The host CPU as /proc/cpuinfo describes it: model name and instruction-set flags (read once)."""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass

CPUINFO = "/proc/cpuinfo"


@dataclass(frozen=True)
class CpuInfo:
    """The first CPU's ``model name`` and ``flags`` (``Features`` on Arm); empty where unknown."""

    model_name: str
    flags: frozenset[str]


def parse_cpuinfo(text: str) -> CpuInfo:
    """Model name and flags from the text of /proc/cpuinfo (the first CPU's lines)."""
    model, flags = "", None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and flags is None:
            flags = frozenset(value.split())
        if model and flags is not None:
            break
    return CpuInfo(model, flags or frozenset())


@functools.cache
def cpu_info() -> CpuInfo:
    """This machine's :class:`CpuInfo` (read once; empty where /proc/cpuinfo is unreadable)."""
    try:
        with open(CPUINFO) as fh:
            return parse_cpuinfo(fh.read())
    except OSError:
        return CpuInfo("", frozenset())


def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (``avx512_bf16``, ``amx_bf16``, …)."""
    return cpu_info().flags


def cpu_signature() -> str:
    """The sorted flags as one string (a build-cache key part), else the processor name."""
    flags = cpu_flags()
    if flags:
        return " ".join(sorted(flags))
    return platform.processor() or platform.machine()

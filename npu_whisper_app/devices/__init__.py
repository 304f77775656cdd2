"""Device registry: one line per device; modules are imported only when needed."""

from __future__ import annotations

import importlib
from typing import Any

from ..profiling import Recorder
from .base import Device, DeviceError, DeviceInfo, DeviceUnavailable, KernelError

# name -> "module:Class". A new device is one module and one line here.
REGISTRY: dict[str, str] = {
    "cpu": "npu_whisper_app.devices.cpu:CpuDevice",
    "xrt": "npu_whisper_app.devices.xrt:XrtDevice",
    "reference": "npu_whisper_app.devices.reference:ReferenceDevice",
}

# Preference order for ``auto``: the first available wins.
AUTO_ORDER: tuple[str, ...] = ("xrt", "cpu")


def device_class(name: str) -> type[Device]:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise DeviceUnavailable(f"unknown device {name!r} (known: {', '.join(REGISTRY)})") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def probe(name: str) -> DeviceInfo:
    """Availability of one device; never raises."""
    try:
        return device_class(name).probe()
    except Exception as exc:  # a broken optional device must not break discovery
        return DeviceInfo(name=name, available=False, description="", reason=f"{type(exc).__name__}: {exc}")


def probe_all() -> list[DeviceInfo]:
    return [probe(name) for name in REGISTRY]


def pick_auto() -> tuple[str, str]:
    """The device ``auto`` chooses, and why."""
    skipped = []
    for name in AUTO_ORDER:
        if name not in REGISTRY:
            continue
        info = probe(name)
        if info.available:
            why = "first available" + (f" ({'; '.join(skipped)})" if skipped else "")
            return name, why
        skipped.append(f"{name} unavailable: {info.reason}")
    return "cpu", "; ".join(skipped)


def create_device(name: str, recorder: Recorder | None = None, **options: Any) -> Device:
    """Instantiate a device by name (``auto`` resolves first)."""
    if name == "auto":
        name, _ = pick_auto()
    cls = device_class(name)
    info = cls.probe()
    if not info.available:
        raise DeviceUnavailable(f"device {name!r} is unavailable: {info.reason}")
    return cls(recorder=recorder, **options)


__all__ = [
    "Device",
    "DeviceError",
    "DeviceInfo",
    "DeviceUnavailable",
    "KernelError",
    "REGISTRY",
    "create_device",
    "device_class",
    "pick_auto",
    "probe",
    "probe_all",
]

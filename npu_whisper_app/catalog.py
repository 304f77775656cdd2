"""What the front ends (CLI, GUI) may ask before or beside a job, without reaching into
the model or device rooms: which models and devices there are, which device ``auto``
picks and why, and the errors a job can end with."""

from __future__ import annotations

from .audio.decode import AudioError
from .devices import DeviceError, DeviceInfo, pick_auto, probe_all
from .model.resolve import ModelError, available_models

__all__ = ["AudioError", "DeviceError", "DeviceInfo", "ModelError", "available_models", "pick_auto", "probe_all"]

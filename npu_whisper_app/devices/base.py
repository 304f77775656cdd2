"""The device contract: what every device (cpu, xrt, ...) implements.

A device prepares weights once (its own layout and dtype, kept resident) and then
runs kernels on activations. Activations cross the contract as float32 CPU
``torch.Tensor`` objects; a device converts them to whatever it needs. Every
dispatch is timed with the monotonic clock and recorded on the device's
:class:`~npu_whisper_app.profiling.Recorder`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..profiling import Recorder, now_ns

TILE = 64  # rows per attention query tile and per key tile


class DeviceError(RuntimeError):
    """Base class for device failures the app reports to the user."""


class DeviceUnavailable(DeviceError):
    """The device cannot be used here (missing runtime, driver, hardware or kernels)."""


class KernelError(DeviceError):
    """A dispatch failed on the device (crashed kernel, timeout, bad state)."""


@dataclass
class DeviceInfo:
    """What ``npu-whisper devices`` shows for one device."""

    name: str
    available: bool
    description: str
    reason: str = ""  # why it is unavailable (empty when available)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "available": self.available,
            "description": self.description,
            "reason": self.reason,
            "details": self.details,
        }


class Device(ABC):
    """Kernel contract. Shapes: ``x[T,K]``, ``w[K,N]``, ``q/k/v[H,T,D]``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    # -- optional capabilities: a device that has one sets the flag and overrides the method
    #: :meth:`gemm` takes ``residual=`` and adds it inside the same dispatch
    fuses_residual: ClassVar[bool] = False
    #: :meth:`attention_qkv` reads q/k/v in place from the qkv gemm's ``[T, 3D]`` output
    packed_attention: ClassVar[bool] = False
    #: encodes a window of any number of frames (a trimmed window); the NPU's kernels are
    #: built for fixed shapes, so the batched mode gives it whole 30 s windows
    any_frames: ClassVar[bool] = False

    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder if recorder is not None else Recorder()

    # -- discovery -------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def probe(cls) -> DeviceInfo:
        """Whether this device can run here, and why not. Not free: the cpu device builds
        its compiled kernels on first use, the xrt device asks the driver (``xrt-smi``)."""

    # -- weights (once, at load) ---------------------------------------------------------
    @abstractmethod
    def prepare_gemm(self, weight: torch.Tensor, bias: torch.Tensor | None) -> Any:
        """Keep ``weight[K,N]`` (and ``bias[N]``) resident in the device's layout."""

    @abstractmethod
    def prepare_norm(self, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> Any:
        """Keep LayerNorm parameters resident."""

    # -- kernels (per window) --------------------------------------------------------------
    @abstractmethod
    def gemm(
        self, x: torch.Tensor, w: Any, *, op: str, gelu: bool = False, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x[T,K] @ w[K,N] + bias``, optionally followed by exact GELU (fused).

        ``residual`` is only passed to devices with :attr:`fuses_residual`."""

    @abstractmethod
    def layernorm(self, x: torch.Tensor, norm: Any, *, op: str) -> torch.Tensor:
        """LayerNorm over the last dimension."""

    @abstractmethod
    def gelu(self, x: torch.Tensor, *, op: str) -> torch.Tensor:
        """Exact (erf) GELU."""

    # where :meth:`add` runs: the host for devices that don't run elementwise adds themselves
    add_runs_on: ClassVar[str | None] = None  # None: on this device

    def add(self, x: torch.Tensor, y: torch.Tensor, *, op: str) -> torch.Tensor:
        """Elementwise ``x + y`` (residuals, positional embedding), timed on the CPU."""
        start = now_ns()
        z = x + y
        end = now_ns()
        self.recorder.record(op, self.add_runs_on or self.name, start, end, x.numel(), 12 * x.numel())
        return z

    @abstractmethod
    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, op: str = "attention") -> torch.Tensor:
        """Softmax(q k^T / sqrt(D)) v over **all** keys, per head.

        Tiled by 64-row query tiles; each (head, query tile) is one timed dispatch that
        meets every key tile with an online (running max / running sum) softmax.
        """

    def attention_qkv(self, qkv: torch.Tensor, n_head: int, *, op: str = "attention") -> torch.Tensor:
        """``qkv[T, 3D]`` (q, k, v side by side) -> ``[T, D]``; only on devices with
        :attr:`packed_attention`."""
        raise NotImplementedError(f"{self.name} has no packed attention")

    def close(self) -> None:  # noqa: B027  (optional: most devices hold nothing to release)
        """Release device resources."""

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def query_tiles(n: int, tile: int = TILE) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering ``range(n)`` in steps of ``tile``."""
    return [(s, min(s + tile, n)) for s in range(0, n, tile)]

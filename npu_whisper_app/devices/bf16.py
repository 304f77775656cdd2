"""bfloat16 helpers: rounding, packing to/from the uint16 bit patterns the NPU buffers hold.

numpy has no bfloat16 dtype, so device buffers carry bf16 as ``uint16`` bit patterns.
Rounding is IEEE round-to-nearest-even (what torch's ``.to(torch.bfloat16)`` does and
what the AIE ``to_v16bfloat16`` / ``srs`` conversions do by default).
"""

from __future__ import annotations

import numpy as np
import torch


def round_bf16(x: torch.Tensor) -> torch.Tensor:
    """fp32 -> fp32 values exactly representable in bf16 (round to nearest, ties to even)."""
    return x.to(torch.float32).to(torch.bfloat16).to(torch.float32)


def round_bf16_numpy(x: np.ndarray) -> np.ndarray:
    """The same rounding by explicit bit arithmetic (independent check of :func:`round_bf16`)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) & 0xFFFF0000).astype(np.uint32)
    nan = np.isnan(x)
    out = rounded.view(np.float32).copy()
    out[nan] = np.float32("nan")
    return out


def to_bf16_bits(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """fp32 tensor/array -> ``uint16`` bf16 bit patterns (RNE), C-contiguous."""
    t = torch.as_tensor(x, dtype=torch.float32)
    return t.contiguous().to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def from_bf16_bits(bits: np.ndarray) -> torch.Tensor:
    """``uint16`` bf16 bit patterns -> fp32 tensor (exact)."""
    b = np.ascontiguousarray(bits, dtype=np.uint16)
    return torch.from_numpy(b.view(np.int16).copy()).view(torch.bfloat16).to(torch.float32)

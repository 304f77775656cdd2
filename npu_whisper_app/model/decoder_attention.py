"""The fast decoder's attention layouts and its fp32 cross-attention: the window's keys
and values as the compiled kernel reads them (fp16, keys in 16-frame blocks), head-major
copies for the fp32 path, and the fp32 cross-attention whose beam or best-of rows share
their window's keys and values (:mod:`.fast_decoder` uses them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class CrossCopies:
    """One layer's keys/values of a batch of windows as the compiled kernel reads them."""

    #: ``(kb, v16)`` fp16, or ``(kb, ks, v8, vs)`` int8 with per-(frame, head) scales
    tensors: tuple[Tensor, ...]
    #: frames stored per window (the longest window's)
    frames: int
    #: int64 ``[windows]``: each window's own frames (the batched mode's windows, each
    #: trimmed to its chunk); None: every window has ``frames``
    lengths: Tensor | None = None

    @property
    def int8(self) -> bool:
        return len(self.tensors) == 4


def int8_copies(kernel: Any, k: Tensor, v: Tensor, n_head: int) -> tuple[Any, ...]:
    """int8 keys (16-frame blocks) and values of ``k, v[B, T, D]`` with one scale per
    (frame, head) (``devices/cpu_cross_q8.h``): half the bytes a decoded token reads."""
    kb, ks = kernel.quantize_cross_q8(k.float(), n_head, True)
    v8, vs = kernel.quantize_cross_q8(v.float(), n_head, False)
    return kb, ks, v8, vs, k.shape[1]


def _blocked_f16(k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, int]:
    """fp16 keys as [B, H, T/16, Dh, 16] blocks (zero-padded frames are never scored) and
    fp16 values [B, H, T, Dh], for the cross-attention kernel."""
    b, h, t, dh = k.shape
    tp = -(-t // 16) * 16
    kp = torch.zeros(b, h, tp, dh, dtype=torch.float16)
    kp[:, :, :t] = k
    kb = kp.view(b, h, tp // 16, 16, dh).transpose(3, 4).contiguous()
    return kb, v.to(torch.float16).contiguous(), t


def cross_heads(kv: list[tuple[Tensor, Tensor]], n_head: int) -> list[tuple[Tensor, Tensor]]:
    """Keys/values head-major and contiguous (``[B, H, T, Dh]``, one per window) for the
    fp32 attention: every token then streams each head's rows instead of strided ones.
    Made only when a step needs them (prompts or beams over 8 rows, no fp16 kernel): with
    the fp16 copies, a window's 12 copies of 3 MB (base) are skipped. The rows of a beam
    or best-of group share their window's (see :func:`cross_attention_fp32`)."""
    return [(_heads(k, n_head).contiguous(), _heads(v, n_head).contiguous()) for k, v in kv]


def cross_attention_fp32(q: Tensor, k: Tensor, v: Tensor, n_head: int, rep: int, lengths: Tensor | None = None) -> Tensor:
    """``q[B * rep, n, D]`` (``rep`` consecutive rows per window: beams, best-of) against
    each window's ``k, v[B, H, T, Dh]``: a group's queries stacked on the query axis, so the
    window's keys/values are read once and never repeated (best-of 5 over 4 windows of
    base would otherwise copy them into 740 MB of fp32). Cross-attention has no mask, so
    each query row's result is the one it would have alone. ``lengths`` (``[B]``): each
    window's own frames, the rest masked."""
    b_rep, n, d = q.shape
    grouped = q.reshape(b_rep // rep, rep * n, d)
    mask = None
    if lengths is not None:
        mask = (torch.arange(k.shape[2])[None, :] < lengths[:, None])[:, None, None, :]
    return _merge(F.scaled_dot_product_attention(_heads(grouped, n_head), k, v, attn_mask=mask)).reshape(b_rep, n, d)


def _heads(x: Tensor, n_head: int) -> Tensor:
    return x.view(*x.shape[:2], n_head, -1).permute(0, 2, 1, 3)


def _merge(a: Tensor) -> Tensor:
    return a.permute(0, 2, 1, 3).flatten(start_dim=2)


def row_lengths(frames: list[int] | None, features: Tensor) -> Tensor | None:
    """Each row of ``features[B, T, D]``'s own frames (int64), where any is under T: the
    windows' ``frames``, repeated as openai-whisper's task repeats the windows' rows for
    best-of or beams; None where every row has T."""
    if frames is None or min(frames) >= features.shape[1]:
        return None
    lengths = torch.tensor(frames, dtype=torch.int64)
    if features.shape[0] != len(frames):
        if features.shape[0] % len(frames):
            raise ValueError(f"{features.shape[0]} feature rows for {len(frames)} windows")
        lengths = lengths.repeat_interleave(features.shape[0] // len(frames))
    return lengths

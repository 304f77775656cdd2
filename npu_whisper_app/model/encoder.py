"""Whisper's audio encoder written once against the device contract.

``TiledEncoder`` replaces openai-whisper's ``AudioEncoder`` inside its model, so the
library's own transcribe loop drives it. Each op is a timed device dispatch; attention
is one dispatch per (head, 64-row query tile) over all frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..devices.base import Device, DeviceError
from ..jobs import IDLE, Cancelled, JobContext
from ..profiling import now_ns

__all__ = ["Cancelled", "TiledEncoder", "trimmed_frames", "prepare_weights"]


@dataclass
class BlockWeights:
    ln1: Any
    qkv: Any
    out: Any
    ln2: Any
    fc1: Any
    fc2: Any


@dataclass
class EncoderWeights:
    conv1: Any
    conv2: Any
    positional: torch.Tensor  # [n_ctx, D]
    blocks: list[BlockWeights]
    ln_post: Any


def conv_weight_as_gemm(weight: torch.Tensor) -> torch.Tensor:
    """Conv1d weight ``[out, in, k]`` -> gemm weight ``[k*in, out]`` (tap-major) matching :func:`im2col`."""
    out_ch = weight.shape[0]
    return weight.detach().permute(2, 1, 0).reshape(-1, out_ch).contiguous()


def im2col(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """``x[T, C]`` (time-major) -> patches ``[T_out, kernel*C]`` for a 1-D convolution.

    Tap-major: patch ``i`` is the ``kernel`` consecutive rows starting at ``stride*i`` of
    the padded input, so it is one contiguous run of memory and the copy is a plain
    row copy (an overlapping strided view made contiguous)."""
    t, c = x.shape
    xp = F.pad(x, (0, 0, padding, padding)).contiguous()  # [T + 2p, C]
    t_out = (t + 2 * padding - kernel) // stride + 1
    return xp.as_strided((t_out, kernel * c), (stride * c, 1)).contiguous()


def prepare_weights(encoder: nn.Module, device: Device) -> EncoderWeights:
    """Upload openai-whisper ``AudioEncoder`` parameters to ``device`` once."""
    dev = device
    blocks = []
    for block in encoder.blocks:
        attn = block.attn
        d = attn.query.weight.shape[0]
        w_qkv = torch.cat([attn.query.weight, attn.key.weight, attn.value.weight], 0).t()
        b_qkv = torch.cat([attn.query.bias, torch.zeros(d, dtype=attn.query.bias.dtype), attn.value.bias])
        blocks.append(
            BlockWeights(
                ln1=dev.prepare_norm(block.attn_ln.weight, block.attn_ln.bias, block.attn_ln.eps),
                qkv=dev.prepare_gemm(w_qkv.detach(), b_qkv.detach()),
                out=dev.prepare_gemm(attn.out.weight.detach().t(), attn.out.bias.detach()),
                ln2=dev.prepare_norm(block.mlp_ln.weight, block.mlp_ln.bias, block.mlp_ln.eps),
                fc1=dev.prepare_gemm(block.mlp[0].weight.detach().t(), block.mlp[0].bias.detach()),
                fc2=dev.prepare_gemm(block.mlp[2].weight.detach().t(), block.mlp[2].bias.detach()),
            )
        )
    return EncoderWeights(
        conv1=dev.prepare_gemm(conv_weight_as_gemm(encoder.conv1.weight), encoder.conv1.bias.detach()),
        conv2=dev.prepare_gemm(conv_weight_as_gemm(encoder.conv2.weight), encoder.conv2.bias.detach()),
        positional=encoder.positional_embedding.detach().float().contiguous(),
        blocks=blocks,
        ln_post=dev.prepare_norm(encoder.ln_post.weight, encoder.ln_post.bias, encoder.ln_post.eps),
    )


TILE_MEL_FRAMES = 2 * 64  # mel frames per 64-row encoder tile (conv2 has stride 2)


def trimmed_frames(mel: torch.Tensor, min_frames: int, margin_frames: int) -> int:
    """How many of ``mel[..., n_frames]``'s frames to encode: up to the last column
    that is not zero padding in any item, plus ``margin_frames``, at least
    ``min_frames``, rounded up to whole tiles, at most all."""
    n = mel.shape[-1]
    used = (mel != 0).flatten(0, -2).any(0).nonzero()
    content = int(used[-1, 0]) + 1 if used.numel() else 0
    need = max(min_frames, content + margin_frames)
    return min(n, -(-need // TILE_MEL_FRAMES) * TILE_MEL_FRAMES)


class TiledEncoder(nn.Module):
    """Drop-in replacement for ``whisper.model.AudioEncoder`` running on a device.

    ``fallback`` (a factory for another device, usually cpu) takes over when the
    device fails mid-job; ``on_fallback`` is told why. Inside ``with encoder.job(ctx)``
    the job's ``should_stop`` is polled between dispatches (raising :class:`Cancelled`)
    and its ``trim`` sets how much of each window is encoded.
    """

    def __init__(
        self,
        reference: nn.Module,
        n_head: int,
        device: Device,
        fallback: Callable[[], Device] | None = None,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        # hidden from nn.Module so its params are not ours; kept only while a fallback
        # may need to prepare them for another device (else their memory is freed with it)
        self.reference = [reference] if fallback is not None else []
        self.n_head = n_head
        self.n_state = reference.ln_post.weight.shape[0]
        self.n_layer = len(reference.blocks)
        self.n_ctx = reference.positional_embedding.shape[0]
        # a real (tiny) parameter keeps ``model.device`` / ``model.dtype`` working
        self.register_buffer("_anchor", torch.zeros(1), persistent=False)
        self.device = device
        self.weights = prepare_weights(reference, device)
        self.fallback = fallback
        self.on_fallback = on_fallback
        self.windows_done = 0
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._ctx: JobContext = IDLE

    @contextmanager
    def job(self, ctx: JobContext) -> Iterator[None]:
        """Run the calls inside with ``ctx``'s stop request and window trimming.

        ``ctx.trim = (min_frames, margin_frames)`` encodes each window only over its
        audio. Whisper was trained on full 30 s windows: fewer frames are faster but
        change the input the model sees, so the pipeline offers it as an option only.
        openai-whisper's transcribe zero-pads the last window's mel (exact 0.0 columns)
        to 3000 frames; with a trim, those columns are dropped down to the audio's frames
        + margin, at least min_frames, in whole attention tiles."""
        previous, self._ctx = self._ctx, ctx
        try:
            yield
        finally:
            self._ctx = previous

    def forget_cached_window(self) -> None:
        """Encode the next window even if it equals the last one (benchmark rounds)."""
        self._cache = None

    @property
    def recorder(self):
        return self.device.recorder

    def _check_stop(self) -> None:
        self._ctx.check_stop()

    # -- one 30 s window -------------------------------------------------------------------
    def encode_window(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel[n_mels, n_frames]`` -> ``[n_frames/2, D]`` through device dispatches."""
        dev, w, rec = self.device, self.weights, self.device.recorder
        rec.set_context(window=self.windows_done, layer=-1)
        x = mel.t().float().contiguous()  # [T, n_mels]

        t0 = now_ns()
        cols = im2col(x, 3, 1, 1)
        rec.record("im2col", "host", t0, now_ns(), 0, 4 * cols.numel())
        x = dev.gemm(cols, w.conv1, op="conv1", gelu=True)  # [T, D]
        self._check_stop()
        t0 = now_ns()
        cols = im2col(x, 3, 2, 1)
        rec.record("im2col", "host", t0, now_ns(), 0, 4 * cols.numel())
        x = dev.gemm(cols, w.conv2, op="conv2", gelu=True)  # [T/2, D]
        n = x.shape[0]
        x = dev.add(x, w.positional[:n], op="pos_add")
        rec.flush()

        d, h = self.n_state, self.n_head
        packed, fused = dev.packed_attention, dev.fuses_residual
        for i, b in enumerate(w.blocks):
            rec.set_context(layer=i)
            self._check_stop()
            y = dev.layernorm(x, b.ln1, op="ln1")
            qkv = dev.gemm(y, b.qkv, op="qkv")  # [T, 3D]
            self._check_stop()
            if packed:  # the device reads q/k/v in place from the gemm's output
                a = dev.attention_qkv(qkv, h, op="attention")  # [T, D]
            else:
                qkv = qkv.view(n, 3, h, d // h).permute(1, 2, 0, 3)  # [3, H, T, Dh]
                q, k, v = qkv[0].contiguous(), qkv[1].contiguous(), qkv[2].contiguous()
                a = dev.attention(q, k, v, op="attention")  # [H, T, Dh]
                a = a.permute(1, 0, 2).reshape(n, d)
            self._check_stop()
            if fused:  # residual add inside the gemm: one dispatch, no extra pass
                x = dev.gemm(a, b.out, op="out_proj", residual=x)
            else:
                x = dev.add(x, dev.gemm(a, b.out, op="out_proj"), op="residual1")
            y = dev.layernorm(x, b.ln2, op="ln2")
            y = dev.gemm(y, b.fc1, op="fc1", gelu=True)
            self._check_stop()
            if fused:
                x = dev.gemm(y, b.fc2, op="fc2", residual=x)
            else:
                x = dev.add(x, dev.gemm(y, b.fc2, op="fc2"), op="residual2")
            rec.flush()

        rec.set_context(layer=self.n_layer)
        x = dev.layernorm(x, w.ln_post, op="ln_post")
        rec.flush()
        return x

    def _switch_to_fallback(self, error: DeviceError) -> None:
        assert self.fallback is not None
        failed = self.device.name
        new = self.fallback()
        new.recorder = self.device.recorder
        try:
            self.device.close()
        except Exception:
            pass
        self.device = new
        self.weights = prepare_weights(self.reference[0], new)
        self.fallback = None
        self.reference = []
        if self.on_fallback is not None:
            self.on_fallback(f"device {failed!r} failed ({error}); continuing on {new.name!r}")

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel[B, n_mels, n_frames]`` -> ``[B, n_frames/2, D]``.

        openai-whisper re-encodes the same window for language detection and for each
        temperature of its fallback; the last result is reused when the mel is equal.
        """
        squeeze = mel.dim() == 2
        if squeeze:
            mel = mel[None]
        outs = []
        if self._ctx.trim is not None:
            mel = mel[..., : trimmed_frames(mel, *self._ctx.trim)]
        for item in mel:
            if self._cache is not None and self._cache[0].shape == item.shape and torch.equal(self._cache[0], item):
                outs.append(self._cache[1])
                continue
            while True:
                try:
                    out = self.encode_window(item)
                    break
                except DeviceError as exc:
                    if self.fallback is None:
                        raise
                    self._switch_to_fallback(exc)
            self.windows_done += 1
            self._cache = (item.detach().clone(), out)
            outs.append(out)
        result = torch.stack(outs).to(mel.dtype)
        return result[0] if squeeze else result

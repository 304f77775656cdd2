"""The ``cpu`` device: BLAS through torch, the same tiling and events as the NPU.

Attention runs one dispatch per (head, 64-row query tile); each dispatch meets all
keys through torch's CPU flash-attention kernel (blockwise, running max and sum).
The tiles are spread over a small thread pool (one thread per core, torch ops release
the GIL), so each dispatch is single-threaded and the cores stay busy.
"""

from __future__ import annotations

import os
import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..profiling import Recorder, now_ns
from .base import TILE, Device, DeviceInfo, query_tiles


@dataclass
class CpuGemm:
    weight: torch.Tensor  # [K, N], contiguous
    bias: torch.Tensor | None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)  # type: ignore[return-value]


@dataclass
class CpuNorm:
    gamma: torch.Tensor
    beta: torch.Tensor
    eps: float


class CpuDevice(Device):
    name = "cpu"
    description = "CPU (torch BLAS, fp32)"

    def __init__(self, recorder: Recorder | None = None, threads: int | None = None) -> None:
        super().__init__(recorder)
        self.threads = threads or torch.get_num_threads()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="cpu-attn") if self.threads > 1 else None

    @classmethod
    def probe(cls) -> DeviceInfo:
        return DeviceInfo(
            name=cls.name,
            available=True,
            description=f"{platform.processor() or platform.machine()} · {os.cpu_count()} logical cores · torch {torch.__version__}",
        )

    # -- weights ---------------------------------------------------------------------
    def prepare_gemm(self, weight: torch.Tensor, bias: torch.Tensor | None) -> CpuGemm:
        w = weight.detach().to(torch.float32).contiguous()
        b = None if bias is None else bias.detach().to(torch.float32).contiguous()
        return CpuGemm(w, b)

    def prepare_norm(self, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> CpuNorm:
        return CpuNorm(gamma.detach().float().contiguous(), beta.detach().float().contiguous(), eps)

    # -- kernels ---------------------------------------------------------------------
    def gemm(self, x: torch.Tensor, w: CpuGemm, *, op: str, gelu: bool = False) -> torch.Tensor:
        t, k = x.shape
        n = w.weight.shape[1]
        start = now_ns()
        if w.bias is not None:
            y = torch.addmm(w.bias, x, w.weight)
        else:
            y = torch.mm(x, w.weight)
        if gelu:
            y = F.gelu(y)
        end = now_ns()
        self.recorder.record(op, self.name, start, end, 2 * t * k * n, 4 * (t * k + k * n + t * n))
        return y

    def layernorm(self, x: torch.Tensor, norm: CpuNorm, *, op: str) -> torch.Tensor:
        start = now_ns()
        y = F.layer_norm(x, (x.shape[-1],), norm.gamma, norm.beta, norm.eps)
        end = now_ns()
        self.recorder.record(op, self.name, start, end, 8 * x.numel(), 8 * x.numel())
        return y

    def gelu(self, x: torch.Tensor, *, op: str) -> torch.Tensor:
        start = now_ns()
        y = F.gelu(x)
        end = now_ns()
        self.recorder.record(op, self.name, start, end, 8 * x.numel(), 8 * x.numel())
        return y

    def add(self, x: torch.Tensor, y: torch.Tensor, *, op: str) -> torch.Tensor:
        start = now_ns()
        z = x + y
        end = now_ns()
        self.recorder.record(op, self.name, start, end, x.numel(), 12 * x.numel())
        return z

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, op: str = "attention") -> torch.Tensor:
        h, t, d = q.shape
        out = torch.empty_like(q)
        tiles = query_tiles(t, TILE)
        record = self.recorder.record
        name = self.name
        inference = torch.is_inference_mode_enabled()  # thread-local: carry it to the pool

        def run_head(head: int) -> None:
            with torch.inference_mode(inference), torch.no_grad():
                _run_head(head)

        def _run_head(head: int) -> None:
            kh = k[head][None, None]
            vh = v[head][None, None]
            for ti, (s, e) in enumerate(tiles):
                start = now_ns()
                out[head, s:e] = F.scaled_dot_product_attention(q[head, s:e][None, None], kh, vh)[0, 0]
                end = now_ns()
                rows = e - s
                record(op, name, start, end, 4 * rows * t * d, 4 * (2 * rows * d + 2 * t * d), head, ti)

        if self._pool is None:
            for head in range(h):
                run_head(head)
        else:
            prev = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                list(self._pool.map(run_head, range(h)))
            finally:
                torch.set_num_threads(prev)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

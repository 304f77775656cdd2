"""The ``cpu`` device: BLAS through torch, the same tiling and events as the NPU.

With the compiled attention kernel (the usual case, see :mod:`.cpu_native`) every op runs
on torch's own intra-op threads: gemms as one BLAS call each, attention through
``at::parallel_for`` over heads. Without it, work is spread over a small pool of Python
threads (one per core; torch ops release the GIL) in which torch runs single-threaded:
gemms split by rows, attention by heads.

Attention is one timed dispatch per (head, 64-row query tile) over all keys:
``scores = scale * q_tile @ K_h^T``, softmax (max, exp, sum), ``out = p @ V_h / sum``
written straight into the ``[T, D]`` buffer the out projection reads. Where the compiled
kernel (``cpu_attention.cpp``, see :mod:`.cpu_native`) is built, a whole head's tiles
run in one call without the GIL, each tile timed inside it; otherwise the same tiles run
as torch calls from Python.

``precision="bf16"`` keeps weights in bfloat16 and runs gemms as bf16 x bf16 with
fp32 accumulation through oneDNN. It is only fast on CPUs with native bf16
(avx512_bf16 / AMX); elsewhere oneDNN emulates it and it is slower than fp32.
``precision="auto"`` picks bf16 there, int8 on other x86 CPUs with AVX2 and fp32 elsewhere
(:func:`choose_precision`).
With bf16 on a CPU with AVX512_BF16, the compiled attention kernel also runs its two
products (q @ K^T, p @ V) as bf16 x bf16 with fp32 accumulation (vdpbf16ps) for a head
width of 64; its softmax stays fp32. Elsewhere attention is the fp32 kernel.
"""

from __future__ import annotations

import os
import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..profiling import Recorder, now_ns
from . import cpu_native
from .base import TILE, Device, DeviceInfo, query_tiles
from .cpuinfo import cpu_flags

PRECISIONS = ("fp32", "bf16", "int8")
PRECISION_CHOICES = ("auto", *PRECISIONS)
MIN_ROWS_TO_SPLIT = 128  # smaller gemms run on the calling thread
CHUNK_ROWS = 256  # rows per gemm work item


def native_bf16() -> bool:
    """True when the CPU has bf16 dot-product instructions (avx512_bf16 or AMX)."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(flags: set[str] | None = None) -> tuple[str, str]:
    """The precision ``auto`` means on this CPU, and why: ``("bf16", ...)`` where the CPU
    has native bf16 dot products (avx512_bf16 or amx_bf16) and torch has oneDNN; else
    ``("int8", ...)`` on x86 CPUs with AVX2 (oneDNN's int8 products: VNNI where the CPU has
    it), which read fp32's words on eval-dev and encode 1.3-1.9x faster than fp32 (README);
    else ``("fp32", ...)``. ``flags`` defaults to /proc/cpuinfo's."""
    flags = cpu_flags() if flags is None else flags
    have = sorted(f for f in ("avx512_bf16", "amx_bf16") if f in flags)
    onednn = torch.backends.mkldnn.is_available()
    if have and onednn:
        return "bf16", f"the CPU has native bf16 ({', '.join(have)}): bf16 gemms with fp32 accumulation"
    no_bf16 = (
        f"the CPU has {', '.join(have)} but torch has no oneDNN (mkldnn) for bf16 gemms" if have
        else "the CPU has no native bf16 (no avx512_bf16 or amx_bf16): bf16 would be emulated, slower than fp32"
    )
    if "avx2" in flags and onednn:
        vnni = sorted(f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags)
        how = f"int8 dot products ({', '.join(vnni)})" if vnni else "AVX2 int8 products (no VNNI)"
        return "int8", f"{no_bf16}; int8 gemms per channel and per row with int32 accumulation, {how}"
    return "fp32", no_bf16 + ("" if onednn else "; torch has no oneDNN for int8 gemms")


def precision_summary(flags: set[str] | None = None) -> str:
    """One line for ``devices`` / ``bench``: what ``auto`` picks and why."""
    precision, reason = choose_precision(flags)
    return f"precision auto -> {precision}: {reason}"


@dataclass
class CpuGemm:
    weight: torch.Tensor  # [K, N], contiguous (fp32, bf16, or int8 for precision int8)
    bias: torch.Tensor | None  # fp32
    scale: torch.Tensor | None = None  # int8: [N] fp32, each output channel's weight scale

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)  # type: ignore[return-value]


@dataclass
class CpuNorm:
    gamma: torch.Tensor
    beta: torch.Tensor
    eps: float


def _init_worker() -> None:
    torch.set_num_threads(1)


class CpuDevice(Device):
    name = "cpu"
    description = "CPU (torch BLAS, fp32 or bf16)"
    fuses_residual = True  # gemm(..., residual=r) returns r + x @ w + b in one dispatch
    packed_attention = True  # attention_qkv(qkv[T,3D]) -> [T,D]
    any_frames = True  # trimmed windows (the batched mode's, --short-window)

    def __init__(
        self, recorder: Recorder | None = None, threads: int | None = None, precision: str = "auto", native: bool = True
    ) -> None:
        """``native=False`` runs attention as torch calls from Python even where the
        compiled kernel is there (the A/B baseline)."""
        super().__init__(recorder)
        #: why this precision (``auto`` resolved by :func:`choose_precision`, or "asked for")
        self.precision_reason = "asked for"
        if precision == "auto":
            precision, self.precision_reason = choose_precision()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {precision!r}")
        if precision == "bf16" and not torch.backends.mkldnn.is_available():
            raise ValueError("precision bf16 needs torch built with oneDNN (mkldnn)")
        self.precision = precision
        self.chunk_rows = CHUNK_ROWS
        self._kernel = cpu_native.load_attention_kernel() if native else None
        self._int8 = cpu_native.load_int8_kernel() if native and precision == "int8" else None
        #: attention's two products in bf16 (vdpbf16ps, fp32 accumulation and softmax): with
        #: precision bf16, where the kernel has them and the CPU has AVX512_BF16 (head width 64)
        self.attention_bf16 = precision == "bf16" and self._kernel is not None and bool(self._kernel.has_bf16())
        # With the compiled kernel every op runs on torch's own intra-op threads (gemms on
        # BLAS's, attention through at::parallel_for): one pool, no second set of threads
        # competing with OpenMP's spinning ones. Without it, on a pool of Python threads.
        self.threads = torch.get_num_threads() if self._kernel is not None else (threads or torch.get_num_threads())
        self._pool = None
        if self._kernel is None and self.threads > 1:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="cpu-dev", initializer=_init_worker)

    @classmethod
    def probe(cls) -> DeviceInfo:
        return DeviceInfo(
            name=cls.name,
            available=True,
            description=f"{platform.processor() or platform.machine()} · {os.cpu_count()} logical cores · torch {torch.__version__}",
            details={
                "attention_kernel": cpu_native.kernel_status(),
                "attention_bf16": cpu_native.attention_bf16_available(),
                "decoder_kernel": cpu_native.DECODER_F16.status(),
                "batched_decoder": cpu_native.batched_decoder_summary(),
                "native_bf16": native_bf16(),
                "precision_auto": precision_summary(),
                "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            },
        )

    # -- threads ---------------------------------------------------------------------
    def _parallel(self, fn, n_items: int) -> None:
        """Run ``fn(i)`` for i in range(n_items) over the pool (inference mode carried)."""
        if self._pool is None or n_items <= 1:
            for i in range(n_items):
                fn(i)
            return
        inference = torch.is_inference_mode_enabled()  # thread-local: carry it to the pool

        def run(i: int) -> None:
            with torch.inference_mode(inference), torch.no_grad():
                fn(i)

        list(self._pool.map(run, range(n_items)))

    def _row_chunks(self, t: int) -> list[tuple[int, int]]:
        # a few more chunks than threads: when another process takes a core, the other
        # worker picks up the rest instead of waiting for a straggler
        n = 1 if (self._pool is None or t < MIN_ROWS_TO_SPLIT) else max(self.threads, -(-t // self.chunk_rows))
        step = -(-t // n)
        return [(s, min(s + step, t)) for s in range(0, t, step)]

    # -- weights ---------------------------------------------------------------------
    def prepare_gemm(self, weight: torch.Tensor, bias: torch.Tensor | None) -> CpuGemm:
        b = None if bias is None else bias.detach().to(torch.float32).contiguous()
        if self.precision == "int8":
            # symmetric int8 weights per output channel (the only copy kept); activations
            # per row (token) at each call, see _gemm_rows_int8
            w32 = weight.detach().float()
            scale = w32.abs().amax(0).clamp_min(1e-12) / 127.0  # [N]
            q = torch.round(w32 / scale).clamp_(-127, 127).to(torch.int8).contiguous()
            return CpuGemm(q, b, scale.contiguous())
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        return CpuGemm(weight.detach().to(dtype).contiguous(), b)

    def prepare_norm(self, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> CpuNorm:
        return CpuNorm(gamma.detach().float().contiguous(), beta.detach().float().contiguous(), eps)

    # -- kernels ---------------------------------------------------------------------
    def _gemm_rows(self, x: torch.Tensor, w: CpuGemm, out: torch.Tensor, gelu: bool, residual: torch.Tensor | None) -> None:
        if w.weight.dtype == torch.int8:
            self._gemm_rows_int8(x, w, out, gelu, residual)
            return
        if w.weight.dtype == torch.bfloat16:
            self._gemm_rows_bf16(x, w, out, gelu, residual)
            return
        if residual is not None:
            torch.addmm(residual, x, w.weight, out=out)
            if w.bias is not None:
                out.add_(w.bias)
        elif w.bias is not None:
            torch.addmm(w.bias, x, w.weight, out=out)
        else:
            torch.mm(x, w.weight, out=out)
        if gelu:
            torch.ops.aten.gelu_(out)

    @staticmethod
    def _gemm_rows_bf16(x: torch.Tensor, w: CpuGemm, out: torch.Tensor, gelu: bool, residual: torch.Tensor | None) -> None:
        """bf16 x bf16 products with fp32 accumulation (oneDNN), the bf16 result widened
        straight into ``out`` (plus the residual), then bias and GELU in place in fp32.
        No fp32 temporaries: a fresh [T, N] fp32 tensor per call costs more in
        first-touch page faults than the product itself (fc1 of base: 90 ms -> 37 ms)."""
        xb = x if x.dtype == torch.bfloat16 else x.to(torch.bfloat16)
        y = torch.mm(xb, w.weight)
        if residual is None:
            out.copy_(y)
        else:
            torch.add(residual, y, out=out)
        if w.bias is not None:
            out.add_(w.bias)
        if gelu:
            torch.ops.aten.gelu_(out)

    def _gemm_rows_int8(self, x: torch.Tensor, w: CpuGemm, out: torch.Tensor, gelu: bool, residual: torch.Tensor | None) -> None:
        """int8 x int8 products with int32 accumulation (oneDNN; VNNI where the CPU has
        it), each row of ``x`` quantised with its own scale. One scale for the whole
        activation (torch's dynamic quantisation) let a few large rows set the step for
        all: 3 of 12 eval-dev clips read otherwise than fp32 (base); per row, none. The
        quantisation and the epilogue are one pass each in ``cpu_int8.cpp``."""
        assert w.scale is not None
        k = self._int8
        if k is not None:
            xq, sx = k.quantize_rows(x)
            k.int8_epilogue(torch._int_mm(xq, w.weight), sx, w.scale, w.bias, residual, out)
        else:
            sx = x.abs().amax(1, keepdim=True).clamp_min_(1e-12).div_(127.0)  # [T, 1]
            xq = torch.round(x / sx).to(torch.int8)
            torch.mul(torch._int_mm(xq, w.weight), sx, out=out)
            out.mul_(w.scale)
            if w.bias is not None:
                out.add_(w.bias)
            if residual is not None:
                out.add_(residual)
        if gelu:
            torch.ops.aten.gelu_(out)

    def gemm(self, x: torch.Tensor, w: CpuGemm, *, op: str, gelu: bool = False, residual: torch.Tensor | None = None) -> torch.Tensor:
        t, k = x.shape
        n = w.weight.shape[1]
        start = now_ns()
        out = torch.empty(t, n, dtype=torch.float32)
        chunks = self._row_chunks(t)

        def part(i: int) -> None:
            s, e = chunks[i]
            self._gemm_rows(x[s:e], w, out[s:e], gelu, None if residual is None else residual[s:e])

        self._parallel(part, len(chunks))
        end = now_ns()
        wbytes = w.weight.element_size() * k * n
        self.recorder.record(op, self.name, start, end, 2 * t * k * n, 4 * (t * k + t * n) + wbytes)
        return out

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

    # -- attention -----------------------------------------------------------------------
    def _attend_head(self, q: torch.Tensor, kT: torch.Tensor, v: torch.Tensor, out: torch.Tensor, head: int, op: str, tiles: list[tuple[int, int]]) -> None:
        """One head: ``q[T,d]``, ``kT[d,T]``, ``v[T,d]`` (any strides), ``out[T,d]`` view."""
        t, d = q.shape
        scale = d ** -0.5
        scores = torch.empty(TILE, t, dtype=torch.float32)
        record, name = self.recorder.record, self.name
        flops, nbytes = 4 * t * d, 4 * (2 * d + 2 * t * d)
        for ti, (s, e) in enumerate(tiles):
            start = now_ns()
            rows = e - s
            sc = scores[:rows]
            torch.addmm(sc, q[s:e], kT, beta=0, alpha=scale, out=sc)
            sc.sub_(sc.amax(-1, keepdim=True)).exp_()
            total = sc.sum(-1, keepdim=True)
            o = out[s:e]
            torch.mm(sc, v, out=o)
            o.div_(total)
            end = now_ns()
            record(op, name, start, end, rows * flops, nbytes, head, ti)

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, op: str = "attention") -> torch.Tensor:
        h, t, d = q.shape
        out = torch.empty(h, t, d, dtype=torch.float32)
        tiles = query_tiles(t, TILE)
        self._parallel(lambda i: self._attend_head(q[i], k[i].t(), v[i], out[i], i, op, tiles), h)
        return out

    def attention_qkv(self, qkv: torch.Tensor, n_head: int, *, op: str = "attention") -> torch.Tensor:
        """Attention straight from the qkv gemm's output ``[T, 3D]`` into ``[T, D]``:
        the same per-(head, query tile) dispatches as :meth:`attention`, no copies."""
        t, three_d = qkv.shape
        dm = three_d // 3
        d = dm // n_head
        if type(self).attention is not CpuDevice.attention:  # a subclass's own kernel: honour it
            split = qkv.view(t, 3, n_head, d).permute(1, 2, 0, 3)
            a = self.attention(split[0].contiguous(), split[1].contiguous(), split[2].contiguous(), op=op)
            return a.permute(1, 0, 2).reshape(t, dm)
        out = torch.empty(t, dm, dtype=torch.float32)
        tiles = query_tiles(t, TILE)
        if self._kernel is not None and qkv.dtype == torch.float32:
            self._attention_compiled(qkv.contiguous(), n_head, out, tiles, op)
            return out

        def head(i: int) -> None:
            c = i * d
            # per-head contiguous copies on the worker (cache-warm, in parallel): strided
            # reads straight from [T, 3D] rows cost more than the copy in the tile loop
            q = qkv[:, c : c + d].contiguous()
            k = qkv[:, dm + c : dm + c + d].contiguous()
            v = qkv[:, 2 * dm + c : 2 * dm + c + d].contiguous()
            o = torch.empty(t, d, dtype=torch.float32)
            self._attend_head(q, k.t(), v, o, i, op, tiles)
            out[:, c : c + d].copy_(o)

        self._parallel(head, n_head)
        return out

    def _attention_compiled(self, qkv: torch.Tensor, n_head: int, out: torch.Tensor, tiles: list[tuple[int, int]], op: str) -> None:
        """One call into the compiled kernel (GIL released, heads in parallel); the tile
        times it read are then recorded as the dispatch events."""
        t = qkv.shape[0]
        d = qkv.shape[1] // 3 // n_head
        times = torch.empty(n_head, 1 + len(tiles), 2, dtype=torch.int64)
        self._kernel.attention(qkv, n_head, TILE, 0, out, times, True, self.attention_bf16)
        record, name = self.recorder.record, self.name
        flops, nbytes = 4 * t * d, 4 * (2 * d + 2 * t * d)
        for i, head_times in enumerate(times.tolist()):
            (io_start, io_end), *tile_times = head_times
            record("attention_io", name, io_start, io_end, 0, 4 * 4 * t * d, i, None)
            for ti, ((start, end), (s, e)) in enumerate(zip(tile_times, tiles)):
                record(op, name, start, end, (e - s) * flops, nbytes, i, ti)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

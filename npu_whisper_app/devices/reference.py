"""Reference numerics: the exact arithmetic of each NPU kernel in ``kernels/``, on the CPU.

Each ``*_kernel`` function below is the specification of one AIE kernel's arithmetic.
The pyxrt stand-in used by the tests runs these functions when a kernel is started, and
the ``reference`` device runs them directly, so ``--device reference`` measures what
NPU numerics cost in accuracy (WER) without an NPU.

Arithmetic (see ``kernels/README.md`` for the matching AIE code):

* **bf16 inputs.** Every operand that enters a kernel as bf16 is rounded from fp32 with
  round-to-nearest-even (:func:`~.bf16.round_bf16`). bf16 x bf16 products are exact in
  fp32 (8-bit x 8-bit significands), so only the accumulation rounds.
* **gemm** (``C = A @ B + bias``, optional GELU): fp32 accumulation, K walked in 64-deep
  tiles in order (the core's accumulator is loaded, 64 MACs are added, it is stored back),
  bias added in fp32 at the end, GELU (tanh form, fp32) fused on the fp32 accumulator,
  output fp32.
* **attention** (flash attention, one 64-row query tile against all key tiles): scores
  ``S = Q K^T`` per 64-key tile in fp32, scaled by ``1/sqrt(D)`` (0.125 for D = 64),
  keys at or beyond ``valid_keys`` masked to -inf (the partial last tile), running row
  max ``m`` and running row sum ``l`` (fp32, rescaled by ``exp(m_old - m_new)``),
  ``P = exp(S - m)`` rounded to bf16 before ``P @ V`` (the MAC takes bf16), fp32
  output accumulator, final ``O / l`` rounded to bf16.
* **layernorm**: bf16 input, mean and variance in fp32 (or better), fp32 gamma/beta,
  output rounded to bf16.
* **gelu**: bf16 in, ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` in fp32, bf16 out.
  (The AIE has no erf; the tanh form differs from exact GELU by < 1e-3 absolute.)

Padding: kernels work on whole tiles; the host pads M (rows) to the array's row tile,
K to 64 and N to the array's column tile with zeros, which changes no valid output.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..profiling import Recorder, now_ns
from .base import TILE, Device, DeviceInfo
from .bf16 import round_bf16

# Tile sizes of the kernels in kernels/ (npu1: 4x4 compute array).
GEMM_M, GEMM_K, GEMM_N = 64, 64, 32  # per-core tile
ARRAY_ROWS, ARRAY_COLS = 4, 4
GEMM_M_PAD = GEMM_M * ARRAY_ROWS  # M is padded to 256 rows
GEMM_N_PAD = GEMM_N * ARRAY_COLS  # N is padded to 128 columns
GEMM_K_PAD = GEMM_K  # K is padded to 64
ATTN_TILE = TILE  # 64 query rows per dispatch, 64 keys per inner step
NORM_ROWS = 4 * ARRAY_COLS  # layernorm/gelu rows are spread over 16 cores
GELU_C = math.sqrt(2.0 / math.pi)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run small tensor ops single-threaded: on small tiles OpenMP's fork/join costs far
    more than the work (results do not depend on the thread count)."""
    prev = torch.get_num_threads()
    if prev == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def pad2(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Zero-pad a 2-D tensor to ``[rows, cols]`` (no copy when already that shape)."""
    r, c = x.shape
    if r == rows and c == cols:
        return x
    return F.pad(x, (0, cols - c, 0, rows - r))


# ---------------------------------------------------------------------------------------
# Kernel arithmetic
# ---------------------------------------------------------------------------------------


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh form, in fp32 (what the AIE epilogue computes)."""
    x = x.to(torch.float32)
    return 0.5 * x * (1.0 + torch.tanh(GELU_C * (x + 0.044715 * x * x * x)))


def gemm_kernel(
    a: torch.Tensor,
    b: torch.Tensor,
    bias: torch.Tensor | None = None,
    gelu: bool = False,
    k_tile: int = GEMM_K,
    *,
    b_is_bf16: bool = False,
) -> torch.Tensor:
    """``a[M,K] @ b[K,N] (+ bias) (-> GELU)`` with bf16 inputs and fp32 accumulation.

    K is walked in ``k_tile`` steps in order; each step adds its 64 products to the
    fp32 accumulator (``addmm``), as the core's ``matmul`` kernel does with C resident.
    """
    a16 = round_bf16(a)
    b16 = b if b_is_bf16 else round_bf16(b)
    m, k = a16.shape
    n = b16.shape[1]
    acc = torch.zeros(m, n, dtype=torch.float32)
    for k0 in range(0, k, k_tile):
        acc = torch.addmm(acc, a16[:, k0 : k0 + k_tile], b16[k0 : k0 + k_tile])
    if bias is not None:
        acc = acc + bias.to(torch.float32)
    if gelu:
        acc = gelu_tanh(acc)
    return acc


def attention_kernel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    valid_keys: int | None = None,
    key_tile: int = ATTN_TILE,
) -> torch.Tensor:
    """Flash attention of query rows against all keys, the way one dispatch runs it.

    ``q[..., Mq, D]``, ``k/v[..., Tk, D]`` (leading dims broadcast, so one call can do a
    single (head, query tile) or many at once with identical per-row arithmetic).
    Keys ``>= valid_keys`` are masked. Returns bf16-valued fp32 ``[..., Mq, D]``.
    """
    d = q.shape[-1]
    tk = k.shape[-2]
    valid = tk if valid_keys is None else int(valid_keys)
    if not 0 < valid <= tk:
        raise ValueError(f"valid_keys={valid} out of range for {tk} keys")
    scale = 1.0 / math.sqrt(d)
    with torch_threads(1):
        q16 = round_bf16(q)
        k16 = round_bf16(k)
        v16 = round_bf16(v)
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
        rows = q.shape[-2]
        m = torch.full((*batch, rows, 1), float("-inf"), dtype=torch.float32)
        l = torch.zeros((*batch, rows, 1), dtype=torch.float32)  # noqa: E741  (flash attention's running sum, as the paper names it)
        acc = torch.zeros((*batch, rows, d), dtype=torch.float32)
        for j0 in range(0, valid, key_tile):
            j1 = min(j0 + key_tile, tk)
            s = torch.matmul(q16, k16[..., j0:j1, :].transpose(-1, -2)) * scale
            if j1 > valid:  # the partial last key tile
                s[..., valid - j0 :] = float("-inf")
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            p = torch.exp(s - m_new)
            corr = torch.exp(m - m_new)
            l = l * corr + p.sum(dim=-1, keepdim=True)  # noqa: E741
            acc = acc * corr + torch.matmul(round_bf16(p), v16[..., j0:j1, :])
            m = m_new
        return round_bf16(acc / l)


def layernorm_kernel(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last dim: bf16 in, fp32 statistics, bf16 out."""
    x16 = round_bf16(x).to(torch.float64)
    mean = x16.mean(dim=-1, keepdim=True)
    var = ((x16 - mean) ** 2).mean(dim=-1, keepdim=True)
    y = ((x16 - mean) * torch.rsqrt(var + eps)).to(torch.float32)
    return round_bf16(y * gamma.to(torch.float32) + beta.to(torch.float32))


def gelu_kernel(x: torch.Tensor) -> torch.Tensor:
    """Standalone GELU: bf16 in, fp32 tanh form, bf16 out."""
    return round_bf16(gelu_tanh(round_bf16(x)))


# ---------------------------------------------------------------------------------------
# The reference device
# ---------------------------------------------------------------------------------------


@dataclass
class RefGemm:
    weight: torch.Tensor  # [K_pad, N_pad] bf16-valued fp32
    bias: torch.Tensor | None  # [N_pad] fp32
    k: int
    n: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.k, self.n)


@dataclass
class RefNorm:
    gamma: torch.Tensor
    beta: torch.Tensor
    eps: float


class ReferenceDevice(Device):
    """The NPU kernels' arithmetic on the CPU (bf16 inputs, fp32 accumulation, same tiles).

    Shapes are padded exactly as the xrt device pads them, so the xrt device (through
    the pyxrt stand-in) and this device give the same numbers. Attention runs batched
    over query tiles per head (one event per head) unless ``per_tile=True``, which runs
    and records one dispatch per (head, query tile) like the NPU.
    """

    name = "reference"
    description = "NPU kernel numerics on the CPU (bf16 in, fp32 accumulate)"

    def __init__(self, recorder: Recorder | None = None, per_tile: bool = False, threads: int | None = None) -> None:
        super().__init__(recorder)
        self.per_tile = per_tile
        n = threads or min(os.cpu_count() or 1, torch.get_num_threads())
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="ref-attn") if n > 1 else None

    @classmethod
    def probe(cls) -> DeviceInfo:
        return DeviceInfo(name=cls.name, available=True, description=cls.description)

    def prepare_gemm(self, weight: torch.Tensor, bias: torch.Tensor | None) -> RefGemm:
        k, n = weight.shape
        kp, np_ = round_up(k, GEMM_K_PAD), round_up(n, GEMM_N_PAD)
        w = round_bf16(pad2(weight.detach().float(), kp, np_)).contiguous()
        b = None
        if bias is not None:
            b = F.pad(bias.detach().float(), (0, np_ - n)).contiguous()
        return RefGemm(w, b, k, n)

    def prepare_norm(self, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> RefNorm:
        return RefNorm(gamma.detach().float().contiguous(), beta.detach().float().contiguous(), float(eps))

    def gemm(self, x: torch.Tensor, w: RefGemm, *, op: str, gelu: bool = False) -> torch.Tensor:
        t, k = x.shape
        if k != w.k:
            raise ValueError(f"{op}: x has K={k}, weight has K={w.k}")
        start = now_ns()
        a = pad2(x.float(), round_up(t, GEMM_M_PAD), w.weight.shape[0])
        y = gemm_kernel(a, w.weight, w.bias, gelu, b_is_bf16=True)[:t, : w.n].contiguous()
        end = now_ns()
        self.recorder.record(op, self.name, start, end, 2 * t * k * w.n, 2 * (t * k + k * w.n) + 4 * t * w.n)
        return y

    def layernorm(self, x: torch.Tensor, norm: RefNorm, *, op: str) -> torch.Tensor:
        start = now_ns()
        y = layernorm_kernel(x, norm.gamma, norm.beta, norm.eps)
        end = now_ns()
        self.recorder.record(op, self.name, start, end, 8 * x.numel(), 4 * x.numel())
        return y

    def gelu(self, x: torch.Tensor, *, op: str) -> torch.Tensor:
        start = now_ns()
        y = gelu_kernel(x)
        end = now_ns()
        self.recorder.record(op, self.name, start, end, 8 * x.numel(), 4 * x.numel())
        return y

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, op: str = "attention") -> torch.Tensor:
        h, t, d = q.shape
        tp = round_up(t, ATTN_TILE)
        nq = tp // ATTN_TILE
        qp = F.pad(q.float(), (0, 0, 0, tp - t)).view(h, nq, ATTN_TILE, d)
        kp = F.pad(k.float(), (0, 0, 0, tp - t))
        vp = F.pad(v.float(), (0, 0, 0, tp - t))
        out = torch.empty(h, nq, ATTN_TILE, d)
        record, name = self.recorder.record, self.name

        def run_head(head: int) -> None:
            kh, vh = kp[head][None], vp[head][None]
            if self.per_tile:
                for ti in range(nq):
                    start = now_ns()
                    out[head, ti] = attention_kernel(qp[head, ti], kp[head], vp[head], t)
                    end = now_ns()
                    rows = min(ATTN_TILE, t - ti * ATTN_TILE)
                    record(op, name, start, end, 4 * rows * t * d, 2 * (2 * rows * d + 2 * t * d), head, ti)
            else:
                start = now_ns()
                out[head] = attention_kernel(qp[head], kh, vh, t)
                end = now_ns()
                record(op, name, start, end, 4 * t * t * d, 2 * 4 * t * d, head, None)

        if self._pool is None:
            for head in range(h):
                run_head(head)
        else:  # heads in parallel, each single-threaded (like the cpu device)
            list(self._pool.map(run_head, range(h)))
        return out.view(h, tp, d)[:, :t].contiguous()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

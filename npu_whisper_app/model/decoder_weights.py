"""The fast decoder's weight formats: fp16 copies (exact where the checkpoint is fp16),
the compiled step's per-layer operands (fp16, or int8 packed for VNNI products), and
the legacy dynamically quantised int8 layers (``quant="int8"``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MAX_F16_ROWS = 8  # the fp16 kernel's rows (beams); longer inputs (the prompt) use fp32
LOGIT_BLOCK = 4096  # vocabulary rows upcast at a time by the fp32 logits of fp16-only weights
#: the products of one decoder layer in ``decoder_step``'s order (its LayerNorms between)
STEP_PRODUCTS = (("attn_ln",), ("q", "k", "v", "o"), ("cross_ln",), ("cq", "co"), ("mlp_ln",), ("fc1", "fc2"))


class F16Linear(nn.Module):
    """A Linear whose few-row calls read an fp16 copy of its weight (exactly equal when
    the weight is fp16-exact); calls with more rows use the fp32 layer."""

    def __init__(self, linear: nn.Linear, kernel: Any) -> None:
        super().__init__()
        self.full = linear
        self.kernel = kernel
        self.weight16 = linear.weight.detach().to(torch.float16).contiguous()
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: Tensor, gelu: bool = False) -> Tensor:
        if x.numel() // x.shape[-1] <= MAX_F16_ROWS and x.dtype == torch.float32:
            return self.kernel.linear_f16(x, self.weight16, self.bias, gelu)
        y = self.full(x)
        return F.gelu(y) if gelu else y


class Bf16Linear:
    """A Linear's product by a bf16 copy of its weight (fp32 accumulation, fp32 bias):
    the cross keys/values where the encoder runs at precision bf16 (its own rounding)."""

    def __init__(self, linear: nn.Linear) -> None:
        self.weight = linear.weight.detach().to(torch.bfloat16)
        self.bias = None if linear.bias is None else linear.bias.detach().float()

    def __call__(self, x: Tensor) -> Tensor:
        y = F.linear(x.to(torch.bfloat16), self.weight).float()
        return y.add_(self.bias) if self.bias is not None else y


def fp16_exact(t: Tensor, rows: int = 4096) -> bool:
    """Every value of ``t`` is an fp16 number (checked ``rows`` rows at a time: no
    whole copies of a large embedding)."""
    t = t.detach()
    if t.dim() < 2:
        return bool(torch.equal(t.to(torch.float16).to(t.dtype), t))
    return all(torch.equal(b.to(torch.float16).to(t.dtype), b) for b in t.split(rows))


def int8_dynamic(module: nn.Module) -> nn.Module:
    """The module's Linear layers as dynamically quantised int8 (fbgemm), one scale per
    output row: per-tensor scales moved words on eval-dev ("clubs" -> "Clos") where
    per-row scales keep them."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's "migrate to torchao" notice
        return quantize_dynamic(module, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def _ln(m: nn.Module) -> list[Tensor]:
    return [m.weight.detach().float().contiguous(), m.bias.detach().float().contiguous()]


def _bias(m: F16Linear) -> Tensor:
    return m.bias if m.bias is not None else torch.empty(0)


def step_params(layer: nn.Module) -> list[Tensor]:
    """The 22 tensors of one layer in ``decoder_step``'s order (an absent bias: empty)."""
    out: list[Tensor] = []
    for group in STEP_PRODUCTS:
        for name in group:
            m = getattr(layer, name)
            out += _ln(m) if name.endswith("_ln") else [m.weight16, _bias(m)]
    return out


class Q8Weight:
    """A product's weight for the int8 VNNI kernel (``devices/cpu_linear_q8.h``): int8
    packed for ``vpdpbusd``, one scale per output row, the per-group corrections."""

    def __init__(self, kernel: Any, weight: Tensor) -> None:
        self.n = weight.shape[0]
        self.packed, self.scales, self.corrections = kernel.pack_q8(weight.detach())

    def tensors(self) -> list[Tensor]:
        return [self.packed, self.scales, self.corrections]


def step_params_q8(kernel: Any, layer: nn.Module) -> list[Tensor]:
    """The 38 tensors of one layer for ``decoder_step``'s int8 products: each product's
    packed weight, scales, corrections and bias."""
    out: list[Tensor] = []
    for group in STEP_PRODUCTS:
        for name in group:
            m = getattr(layer, name)
            out += _ln(m) if name.endswith("_ln") else [*Q8Weight(kernel, m.weight16).tensors(), _bias(m)]
    return out

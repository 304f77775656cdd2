"""openai-whisper's text decoder without what makes it slow on a CPU.

openai-whisper's decoding loop (``whisper.decoding.DecodingTask``: tokenizer, options,
logit filters, timestamp rules, temperature fallback, beam search) is kept as it is; only
its ``Inference`` object (the thing that turns tokens into logits) is replaced for models
that carry a :class:`FastDecoder`:

- no forward hooks: openai-whisper grows its self-attention kv cache with a hook and
  ``torch.cat`` on every token (a new tensor per layer per token); here the cache is
  preallocated ``[B, n_text_ctx, D]`` per layer and written in place;
- the cross-attention keys/values are computed once per audio window and reused across
  decode() calls on the same features (temperature fallback re-decodes the same window);
- the first pass (the prompt: up to 224 previous-text tokens plus the start tokens)
  computes vocabulary logits only for the two rows the loop reads (the start-of-transcript
  row for the no-speech probability and the last row), not for every prompt position;
- the matrix-vector products of each token read fp16 copies of the weights (a small
  compiled kernel, ``devices/cpu_decoder_f16.cpp``, fp32 accumulation) where the weights
  are exactly fp16 numbers, as every openai checkpoint's are: the same products, half the
  memory traffic, which is what a decoded token's time is (base: 190 -> 95 MB a token);
- the batched long-form mode decodes with ``int8=True`` (:meth:`FastDecoder.inference_factory`):
  the windows' cross keys/values as int8 (one scale per frame and head: half the bytes a
  step reads) and, with AVX512-VNNI, the step's products and the vocabulary's as int8
  ``vpdpbusd`` (4x the multiply-adds an instruction of fp32 FMAs, which is what an
  8-row step's time was). Not exact: measured on words (README), never in the
  openai-whisper loop;
- optional ``quant="int8"``: the decoder's Linear layers (and, with ``int8-logits``, the
  vocabulary projection) as dynamically quantised int8 (fbgemm, VNNI), which changes the
  numbers a little and therefore may change tokens; the exact path is the default.

Otherwise the same arithmetic as openai-whisper: the same products in fp32 (in another
order), LayerNorm, softmax attention over every frame, exact GELU. Where the compiled
kernel runs (AVX-512), each token goes through all layers in one call and reads the
window's cross-attention keys/values as fp16 copies (rounded: the one inexact step). The
tokens are measured, not assumed: equal to openai-whisper's in the tests (tiny.en: greedy,
prompt with fallback, beam 3) and on eval-dev (base, benchmarks/decoder_variants.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..jobs import IDLE, JobContext
from .decoder_attention import (
    CrossCopies,
    _blocked_f16,
    _heads,
    _merge,
    cross_attention_fp32,
    cross_heads,
    int8_copies,
    row_lengths,
)
from .decoder_weights import (
    LOGIT_BLOCK,
    MAX_F16_ROWS,
    Bf16Linear,
    F16Linear,
    Q8Weight,
    fp16_exact,
    int8_dynamic,
    step_params,
    step_params_q8,
)

__all__ = ["F16Linear", "FastDecoder", "FastInference", "QUANT_MODES", "_blocked_f16", "attach_fast_decoder", "fp16_exact"]

QUANT_MODES = ("none", "int8", "int8-logits")


class _Layer(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        a, c = block.attn, block.cross_attn
        self.attn_ln = block.attn_ln
        self.q, self.k, self.v, self.o = a.query, a.key, a.value, a.out
        self.cross_ln = block.cross_attn_ln
        self.cq, self.ck, self.cv, self.co = c.query, c.key, c.value, c.out
        self.mlp_ln = block.mlp_ln
        self.fc1, self.fc2 = block.mlp[0], block.mlp[2]


class FastDecoder(nn.Module):
    """Holds the decoder's weights (shared with, or quantised copies of, the model's)."""

    def __init__(self, model: nn.Module, quant: str = "none", kernel: Any = None, fp16_only: bool = False) -> None:
        """``kernel``: the compiled fp16 decoder kernel (``devices.cpu_native.
        load_decoder_kernel()``; the engine passes it in), None for the Python loop.

        ``fp16_only``: where the fp16 copies are made, hold the decoder's matrices once,
        as fp16, in the model itself: each Linear weight of its text decoder and its token
        embedding *become* the fp16 copies the kernel reads (base: ~200 MB of fp32 freed).
        Every value stays the same (the copies are made only where every weight is an
        exact fp16 number): openai-whisper's ``Linear`` upcasts its weight to the input's
        dtype on each call (the fp32 paths: prompts over 8 rows, word timestamps, language
        detection) and :meth:`logits` upcasts the vocabulary a block at a time. It changes
        the model in place for good: the engine's own model only."""
        super().__init__()
        if quant not in QUANT_MODES:
            raise ValueError(f"decoder quant must be one of {QUANT_MODES}, got {quant!r}")
        dec = model.decoder
        self.quant = quant
        self.n_head = model.dims.n_text_head
        self.n_ctx = model.dims.n_text_ctx
        self.n_state = model.dims.n_text_state
        self.token_embedding = dec.token_embedding
        self.positional_embedding = dec.positional_embedding
        self.ln = dec.ln
        layers = [_Layer(b) for b in dec.blocks]
        self.logits_proj: nn.Module | None = None
        if quant != "none":
            import copy

            layers = [int8_dynamic(copy.deepcopy(layer)) for layer in layers]
            for q_layer, layer in zip(layers, (_Layer(b) for b in dec.blocks)):
                # cross keys/values run once per window on 1500 frames: keep them exact
                q_layer.ck, q_layer.cv = layer.ck, layer.cv
            if quant == "int8-logits":
                proj = nn.Linear(self.n_state, self.token_embedding.weight.shape[0], bias=False)
                proj.weight = nn.Parameter(self.token_embedding.weight.detach().clone(), requires_grad=False)
                self.logits_proj = int8_dynamic(nn.Sequential(proj))
        #: "fp16" when the tokens' products read fp16 copies of the weights, else "fp32"
        self.weight_format = "fp32"
        #: per-token cross-attention reads fp16 copies of the window's keys/values
        #: (rounded: not exact; AVX-512 only)
        self.cross_fp16 = False
        #: the fp16 cross keys/values made by bf16 products (fp32 accumulation, as the
        #: bf16 encoder's): set by the engine where the encoder runs at precision bf16
        #: (2.4x faster than the fp32 products; their rounding is the encoder's own)
        self.cross_bf16 = False
        self._cross_w16: dict[int, tuple[Bf16Linear, Bf16Linear]] = {}
        #: per layer, the tensors the compiled one-token step reads (None: Python loop)
        self.step_params: list[list[Tensor]] | None = None
        self.logits16: Tensor | None = None
        #: the compiled step and the int8 VNNI products (``devices/cpu_linear_q8.h``) are
        #: there (set once with the fp16 copies; read by every int8 step)
        self.int8_products = False
        self._kernel = None
        if quant == "none" and kernel is not None:
            self._use_fp16(dec, layers, kernel, fp16_only)
        self.layers = nn.ModuleList(layers)
        tok = None
        try:
            from whisper.tokenizer import get_tokenizer

            tok = get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
        except Exception:
            pass
        self.sot = tok.sot if tok is not None else None
        #: a row whose last token is end-of-text has finished (openai-whisper's greedy and
        #: sampling decoders keep appending it and read nothing more of the row)
        self.eot = tok.eot if tok is not None else None
        self._cross: tuple[Tensor, bool, list[tuple[Tensor, Tensor]] | None] | None = None
        self._q8_params: list[list[Tensor]] | None = None
        self._logits_q8: Q8Weight | None = None
        self._cross16: list[CrossCopies] | None = None

    def inference_factory(self, ctx: JobContext = IDLE, int8: bool = False) -> Callable[..., FastInference]:
        """What ``model.whisper_loop.decode`` builds its token step with, for one job:
        ``ctx.should_stop`` is polled before every token, so a job (or a live partial
        overtaken by a final) stops between tokens, not at the end. ``int8``: the
        compiled step reads int8 copies of the windows' keys and values (half the bytes
        of fp16) and, where the CPU has VNNI, its products and the vocabulary's are int8
        (:attr:`int8_products`). Not exact: the batched mode, which promises no
        openai-whisper parity, measured on words. The factory takes ``frames`` (each
        window's own frame count, for windows of different lengths in one batch)."""
        return lambda _model, initial_token_length, frames=None: FastInference(self, initial_token_length, ctx, int8, frames)

    def _q8_step_params(self) -> list[list[Tensor]]:
        """Per layer the int8 step's 38 tensors, and the vocabulary's int8 copy: made on the
        first int8 decode (base: 21 + 28 MB beside the fp16 copies), kept after."""
        if self._q8_params is None:
            self._logits_q8 = Q8Weight(self._kernel, self.logits16)
            self._q8_params = [step_params_q8(self._kernel, layer) for layer in self.layers]
        return self._q8_params

    def _use_fp16(self, dec: nn.Module, layers: list[_Layer], kernel: Any, fp16_only: bool) -> None:
        """fp16 weights for the per-token products, if no weight would change (an
        fp32-trained or fine-tuned checkpoint keeps fp32); with ``fp16_only`` the model's
        own weights are replaced by them as they are made (see ``__init__``)."""
        if not all(fp16_exact(p) for p in dec.parameters()):
            return
        if self.n_state % kernel.lanes:
            return

        def share(module: nn.Module, w16: Tensor) -> None:
            if fp16_only:
                module.weight = nn.Parameter(w16, requires_grad=False)

        for layer in layers:
            for name in ("q", "k", "v", "o", "cq", "co", "fc1", "fc2"):
                f16 = F16Linear(getattr(layer, name), kernel)
                share(f16.full, f16.weight16)
                setattr(layer, name, f16)
            for lin in (layer.ck, layer.cv):  # once per window (1500 rows): upcast per call
                share(lin, lin.weight.detach().to(torch.float16).contiguous())
        self.logits16 = self.token_embedding.weight.detach().to(torch.float16).contiguous()
        share(self.token_embedding, self.logits16)
        self._kernel = kernel
        self.weight_format = "fp16"
        self.cross_fp16 = kernel.isa() == "avx512f" and self.n_state // self.n_head == 64
        if self.cross_fp16:
            self.step_params = [step_params(layer) for layer in layers]
            self.int8_products = bool(kernel.has_q8())

    # -- cross-attention keys/values, once per window ---------------------------------
    def cross_kv(self, xa: Tensor, int8: bool = False, lengths: Tensor | None = None) -> list[tuple[Tensor, Tensor]] | None:
        """Each layer's cross-attention keys and values of the window, ``[B, T, D]`` as the
        projections give them (see :func:`cross_heads` for the fp32 attention's layout);
        None where only the kernel's copies are kept (:meth:`cross16`: fp16, or int8 with
        ``int8``). ``lengths`` (int64 ``[B]``): each window's own frames (the others are
        padding, never read)."""
        int8 = int8 and self.cross_fp16
        if self._cross is not None:
            feats, fmt, lens, kv = self._cross
            same_lengths = (lens is None) == (lengths is None) and (lens is None or torch.equal(lens, lengths))
            if fmt == int8 and same_lengths and (feats is xa or (feats.shape == xa.shape and torch.equal(feats, xa))):
                return kv
        if self.cross_fp16:
            # only the kernel's copies are kept, made a layer at a time: the fp32
            # keys/values of a batch of 8 windows are 295 MB for base (see cross_kv_fp32)
            self._cross16 = None  # the last window's go first
            self._cross16 = [self._cross_copies(layer, xa, int8, lengths) for layer in self.layers]
            self._cross = (xa, int8, lengths, None)
            return None
        kv = self.cross_kv_fp32(xa)
        self._cross = (xa, False, lengths, kv)
        self._cross16 = None
        return kv

    def _cross_copies(self, layer: _Layer, xa: Tensor, int8: bool, lengths: Tensor | None) -> CrossCopies:
        """One layer's fp16 (or int8) keys/values of ``xa[B, T, D]``, made a window at a
        time (over its own frames): the fp32 products and the padded copy of one window
        at once, not of the batch's."""
        b, t, _ = xa.shape
        ck, cv = self._cross_projections(layer)

        def one(x: Tensor) -> tuple[Tensor, ...]:
            if int8:
                return int8_copies(self._kernel, ck(x), cv(x), self.n_head)[:-1]
            return _blocked_f16(_heads(ck(x), self.n_head), _heads(cv(x), self.n_head))[:-1]

        if b == 1 and lengths is None:
            return CrossCopies(one(xa), t)
        own = [t] * b if lengths is None else [int(n) for n in lengths]
        if max(own) != t:
            raise ValueError(f"the longest window must fill the features ({max(own)} of {t} frames)")
        longest = own.index(t)  # first: its copies give the batch's shapes
        parts: list[Tensor] = []
        for i in [longest, *(j for j in range(b) if j != longest)]:
            p1 = one(xa[i : i + 1, : own[i]])
            if not parts:
                make = torch.empty if lengths is None else torch.zeros  # a shorter window's tail: zeros, never read
                parts = [make((b, *p.shape[1:]), dtype=p.dtype) for p in p1]
            for whole, p in zip(parts, p1):
                whole[i][tuple(slice(0, n) for n in p.shape[1:])] = p[0]
        return CrossCopies(tuple(parts), t, lengths)

    def _cross_projections(self, layer: _Layer) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
        """The layer's key and value projections of the audio features: its own Linears,
        or with :attr:`cross_bf16` bf16 copies of their weights (made once)."""
        if not self.cross_bf16:
            return layer.ck, layer.cv
        if id(layer) not in self._cross_w16:
            self._cross_w16[id(layer)] = (Bf16Linear(layer.ck), Bf16Linear(layer.cv))
        return self._cross_w16[id(layer)]

    def forget_window(self) -> None:
        """Drop the last window's cross-attention keys/values (kept so that a fallback
        re-decoding the same window reuses them; a batch of 8 windows' are 147 MB for
        base), once no decode of that window can follow."""
        self._cross = None
        self._cross16 = None

    def cross_kv_fp32(self, xa: Tensor) -> list[tuple[Tensor, Tensor]]:
        """The fp32 keys/values, for the steps the fp16 kernel does not serve (over 8 rows)."""
        return [(layer.ck(xa), layer.cv(xa)) for layer in self.layers]

    def cross16(self) -> list[CrossCopies] | None:
        """The last window's fp16 or int8 keys/values (from :meth:`cross_kv`); an inference
        keeps its own reference, so a later window cannot swap them under it."""
        return self._cross16

    def step(
        self, x: Tensor, cache: list[tuple[Tensor, Tensor]], cross16: list[CrossCopies] | None, off: int, rep: int,
        live: Tensor | None = None, int8: bool = False,
    ) -> Tensor | None:
        """One new token per row (``x[B, 1, D]``, embedded) through every layer in one
        compiled call; None where it does not apply (no kernel, more than 8 rows).
        ``live`` (``[B]`` bool, optional): rows still decoding; the attention of the others
        is skipped (a batch's rows end at different lengths: a finished row would read its
        window's 18 MB of keys and values a step for nothing). Live rows' numbers are the
        same with or without it. ``int8``: the int8 products where the CPU has them."""
        if self.step_params is None or cross16 is None or x.shape[0] > MAX_F16_ROWS or x.shape[1] != 1:
            return None
        caches = [t for kv in cache for t in kv]
        flat = [t for copies in cross16 for t in copies.tensors]
        flags = live.to(torch.uint8).contiguous() if live is not None else None
        out = self._kernel.decoder_step(
            x.reshape(x.shape[0], -1).contiguous(), self._q8_step_params() if int8 and self.int8_products else self.step_params, caches, flat,
            cross16[0].frames, off, rep, self.n_head, flags, cross16[0].lengths,
        )
        return out.view_as(x)

    def cross_attention(self, cross16: list[CrossCopies] | None, layer_index: int, q: Tensor, rep: int) -> Tensor | None:
        """Per-token cross-attention on the fp16 (or int8) copies: ``q[B, n, D]`` with B =
        windows x ``rep`` beams; None where it does not apply (the prompt's many rows)."""
        if cross16 is None:
            return None
        b, n, d = q.shape
        rows = rep * n
        if rows > MAX_F16_ROWS:
            return None
        qh = q.reshape(b // rep, rows, self.n_head, d // self.n_head)
        c = cross16[layer_index]
        attention = self._kernel.cross_attention_q8 if c.int8 else self._kernel.cross_attention_f16
        out = attention(qh, *c.tensors, c.frames, c.lengths)
        return out.view(b, n, d)

    def logits(self, x: Tensor, int8: bool = False) -> Tensor:
        if self.logits_proj is not None:
            return self.logits_proj(x).float()
        few = x.dtype == torch.float32 and x.numel() // x.shape[-1] <= MAX_F16_ROWS
        if int8 and few and self.int8_products:
            self._q8_step_params()
            assert self._logits_q8 is not None
            return self._kernel.linear_q8(x, *self._logits_q8.tensors(), self._logits_q8.n)
        if self.logits16 is not None and few:
            return self._kernel.linear_f16(x, self.logits16, None)
        weight = self.token_embedding.weight
        if weight.dtype == x.dtype:
            return (x @ torch.transpose(weight, 0, 1)).float()
        # fp16-only weights (fp16_only): upcast a block of the vocabulary at a time
        # (exact), not a whole fp32 copy (base: 106 MB) per call
        out = torch.empty(*x.shape[:-1], weight.shape[0], dtype=x.dtype)
        for s in range(0, weight.shape[0], LOGIT_BLOCK):
            out[..., s : s + LOGIT_BLOCK] = x @ torch.transpose(weight[s : s + LOGIT_BLOCK].to(x.dtype), 0, 1)
        return out.float()


def _live_logits(fd: FastDecoder, x: Tensor, live: Tensor | None, int8: bool = False) -> Tensor:
    """Logits of the live rows of ``x[B, 1, D]``, zeros for finished ones (read by no
    decoder). At least two rows go through the product: the one-row kernel sums in
    another order, and a live row's logits must not depend on which rows finished."""
    if live is None:
        return fd.logits(x, int8)
    idx = live.nonzero().flatten()
    if idx.numel() < 2:
        idx = torch.cat([idx, (~live).nonzero().flatten()[: 2 - idx.numel()]])
    part = fd.logits(x[idx], int8)
    out = torch.zeros(x.shape[0], *part.shape[1:], dtype=part.dtype)
    out[idx] = part
    return out


class FastInference:
    """openai-whisper's ``Inference`` interface (``logits``, ``rearrange_kv_cache``,
    ``cleanup_caching``) over a :class:`FastDecoder` with a preallocated cache."""

    def __init__(
        self, fast: FastDecoder, initial_token_length: int, ctx: JobContext = IDLE, int8: bool = False, frames: list[int] | None = None,
    ) -> None:
        """``frames``: each audio window's own frame count, where the windows of one batch
        differ (the features are padded to the longest; the rest is never attended)."""
        self.fast = fast
        self.ctx = ctx
        self.int8 = int8
        self.frames = frames
        self.lengths: Tensor | None = None
        self.initial_token_length = initial_token_length
        self.offset = 0
        self.cache: list[tuple[Tensor, Tensor]] | None = None
        self.cross_raw: list[tuple[Tensor, Tensor]] | None = None
        self.cross: list[tuple[Tensor, Tensor]] | None = None  # head-major, when first needed
        self.cross16: list[CrossCopies] | None = None
        self.rep = 1

    def _alloc(self, batch: int, dtype: torch.dtype, length: int) -> None:
        fd = self.fast
        self.cache = [
            (torch.empty(batch, length, fd.n_state, dtype=dtype), torch.empty(batch, length, fd.n_state, dtype=dtype))
            for _ in fd.layers
        ]
        self.offset = 0

    def _grow(self) -> None:
        """The whole text context, for a decode past the usual length (see logits)."""
        assert self.cache is not None
        old, n = self.cache, self.offset
        self._alloc(old[0][0].shape[0], old[0][0].dtype, self.fast.n_ctx)
        for (kc, vc), (ko, vo) in zip(self.cache, old):
            kc[:, :n], vc[:, :n] = ko[:, :n], vo[:, :n]
        self.offset = n

    def logits(self, tokens: Tensor, audio_features: Tensor) -> Tensor:
        fd = self.fast
        self.ctx.check_stop()
        first = self.cache is None
        if first:
            # room for the prompt and openai-whisper's default sample_len (n_ctx // 2), not
            # the whole context: the caches of a best-of-5 fallback over 4 windows of base
            # are 220 MB at 448 positions; a longer decode grows them (_grow)
            self._alloc(tokens.shape[0], audio_features.dtype, min(fd.n_ctx, tokens.shape[-1] + fd.n_ctx // 2 + 1))
            self.lengths = row_lengths(self.frames, audio_features)
            self.cross_raw = fd.cross_kv(audio_features, self.int8, self.lengths)
            self.cross16 = fd.cross16()
            self.rep = tokens.shape[0] // audio_features.shape[0]
            self.cross = None
        live: Tensor | None = None
        if not first and tokens.shape[-1] > self.initial_token_length:
            if fd.eot is not None and tokens.shape[0] > 1:
                live = tokens[:, -1] != fd.eot
                live = None if bool(live.all()) else live
            tokens = tokens[:, -1:]
        n = tokens.shape[-1]
        off = self.offset
        if off + n > fd.n_ctx:
            raise RuntimeError("decoder context exceeded")
        assert self.cache is not None
        if off + n > self.cache[0][0].shape[1]:
            self._grow()
        h = fd.n_head
        x = fd.token_embedding(tokens) + fd.positional_embedding[off : off + n]
        x = x.to(audio_features.dtype)
        causal = n > 1
        if not first and x.dtype == torch.float32:
            stepped = fd.step(x, self.cache, self.cross16, off, self.rep, live, self.int8)
            if stepped is not None:
                self.offset = off + n
                return _live_logits(fd, fd.ln(stepped), live, self.int8)
        for i, (layer, (kc, vc)) in enumerate(zip(fd.layers, self.cache)):
            # self-attention, kv written into the preallocated cache
            y = layer.attn_ln(x)
            q = layer.q(y)
            kc[:, off : off + n] = layer.k(y)
            vc[:, off : off + n] = layer.v(y)
            a = F.scaled_dot_product_attention(_heads(q, h), _heads(kc[:, : off + n], h), _heads(vc[:, : off + n], h), is_causal=causal)
            x = x + layer.o(_merge(a))
            # cross-attention on the window's precomputed keys/values
            y = layer.cross_ln(x)
            q = layer.cq(y)
            a = fd.cross_attention(self.cross16, i, q, self.rep)
            if a is None:
                if self.cross is None:
                    if self.cross_raw is None:  # fp16 copies only: the fp32 ones on demand
                        self.cross_raw = fd.cross_kv_fp32(audio_features)
                    self.cross = cross_heads(self.cross_raw, h)
                    self.cross_raw = None  # the head-major copies are all the steps read
                ck, cv = self.cross[i]
                a = cross_attention_fp32(q, ck, cv, h, self.rep, self.lengths)
            x = x + layer.co(a)
            y = layer.mlp_ln(x)
            x = x + layer.fc2(layer.fc1(y, gelu=True) if isinstance(layer.fc1, F16Linear) else F.gelu(layer.fc1(y)))
        self.offset = off + n
        if first and n > 2:
            # the loop reads only the start-of-transcript row (no-speech probability) and
            # the last row; the prompt rows before them are never looked at
            rows = [n - 1]
            if fd.sot is not None:
                hits = (tokens[0] == fd.sot).nonzero()
                if len(hits):
                    rows.insert(0, int(hits[0, 0]))
            idx = torch.tensor(sorted(set(rows)))
            part = fd.logits(fd.ln(x[:, idx]), self.int8)
            out = torch.zeros(x.shape[0], n, part.shape[-1], dtype=part.dtype) if len(idx) == n else torch.empty(x.shape[0], n, part.shape[-1], dtype=part.dtype)
            out[:, idx] = part
            return out
        return fd.logits(fd.ln(x), self.int8)

    def rearrange_kv_cache(self, source_indices: list[int]) -> None:
        if self.cache is not None and source_indices != list(range(len(source_indices))):
            idx = torch.tensor(source_indices)
            n = self.offset
            for kc, vc in self.cache:
                kc[:, :n] = kc[idx, :n]
                vc[:, :n] = vc[idx, :n]

    def cleanup_caching(self) -> None:
        self.cache = None
        self.cross_raw = None
        self.cross = None
        self.cross16 = None
        self.offset = 0


def attach_fast_decoder(model: nn.Module, quant: str = "none", kernel: Any = None, fp16_only: bool = False) -> FastDecoder:
    """A fast decoder over ``model``'s text decoder (its weights shared, or quantised
    copies); ``kernel`` and ``fp16_only`` as for :class:`FastDecoder`."""
    return FastDecoder(model, quant, kernel, fp16_only)

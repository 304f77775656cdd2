"""CTranslate2 Whisper -> openai-whisper checkpoint, the conversion cache, and model building."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from whisper.model import ModelDimensions, Whisper

from .ct2 import Ct2Model, ModelError, model_bin_parts, read_ct2

__all__ = [
    "CONVERTER_VERSION",
    "cache_dir",
    "ct2_to_checkpoint",
    "convert_ct2",
    "converted_path",
    "load_converted",
    "model_from_checkpoint",
    "empty_whisper",
    "expected_shapes",
    "heads_mask_from_dump",
]

log = logging.getLogger(__name__)

#: Bump when the conversion output changes, so old cache entries are not reused.
CONVERTER_VERSION = 1

# Scalars CTranslate2 writes for Whisper; other values mean an architecture Whisper lacks.
_EXPECTED_FLAGS = {
    "decoder/activation": 3,  # GELU
    "decoder/pre_norm": 1,
    "decoder/alibi": 0,
    "decoder/scale_embeddings": 0,
}


def cache_dir() -> Path:
    """The app's cache folder: ``$NPU_WHISPER_CACHE`` or the platform user cache dir."""
    env = os.environ.get("NPU_WHISPER_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("npu-whisper"))


# ---------------------------------------------------------------- CT2 -> state dict


def _layers(m: Ct2Model, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/self_attention/linear_0/weight" in m:
        n += 1
    return n


def _first(m: Ct2Model, *names: str) -> str:
    for name in names:
        if name in m:
            return name
    raise ModelError(f"{m.path}: not a Whisper model (missing variable {names[0]!r})")


def _dims(m: Ct2Model) -> ModelDimensions:
    conv1 = m.shape(_first(m, "encoder/conv1/weight"))
    emb = m.shape(_first(m, "decoder/embeddings/weight"))
    enc_pos = m.shape(_first(m, "encoder/position_encodings/encodings", "encoder/position_encodings"))
    dec_pos = m.shape(_first(m, "decoder/position_encodings/encodings", "decoder/position_encodings"))
    heads = {}
    for side in ("encoder", "decoder"):
        h = m.scalar(f"{side}/num_heads")
        if not h or h <= 0:
            raise ModelError(f"{m.path}: not a Whisper model (missing or bad {side}/num_heads)")
        heads[side] = h
    if len(conv1) != 3 or len(emb) != 2 or len(enc_pos) != 2 or len(dec_pos) != 2:
        raise ModelError(f"{m.path}: not a Whisper model (unexpected tensor ranks)")
    dims = ModelDimensions(
        n_mels=conv1[1],
        n_audio_ctx=enc_pos[0],
        n_audio_state=conv1[0],
        n_audio_head=heads["encoder"],
        n_audio_layer=_layers(m, "encoder"),
        n_vocab=emb[0],
        n_text_ctx=dec_pos[0],
        n_text_state=emb[1],
        n_text_head=heads["decoder"],
        n_text_layer=_layers(m, "decoder"),
    )
    if not dims.n_audio_layer or not dims.n_text_layer:
        raise ModelError(f"{m.path}: not a Whisper model (no encoder or decoder layers)")
    if dims.n_audio_state % dims.n_audio_head or dims.n_text_state % dims.n_text_head:
        raise ModelError(f"{m.path}: width is not a multiple of num_heads")
    return dims


def _rows(m: Ct2Model, name: str, part: int, parts: int) -> torch.Tensor:
    """Block ``part`` of ``parts`` equal row blocks of a fused variable, as float32."""
    shape = m.raw(name).shape  # raises for a missing variable
    n = shape[0] // parts if shape else 0
    if not shape or shape[0] != n * parts:
        raise ModelError(f"{m.path}: {name!r} of shape {list(shape)} is not {parts} fused blocks")
    return torch.from_numpy(m.float32(name, slice(part * n, (part + 1) * n)))


def _t(m: Ct2Model, name: str) -> torch.Tensor:
    return torch.from_numpy(m.float32(name))


def _attention(m: Ct2Model, src: str, dst: str, sd: dict[str, torch.Tensor], cross: bool) -> None:
    if cross:  # linear_0 = query, linear_1 = fused (key, value), linear_2 = out
        sd[f"{dst}.query.weight"] = _t(m, f"{src}/linear_0/weight")
        sd[f"{dst}.query.bias"] = _t(m, f"{src}/linear_0/bias")
        kv, out = f"{src}/linear_1", f"{src}/linear_2"
        sd[f"{dst}.key.weight"] = _rows(m, f"{kv}/weight", 0, 2)
        sd[f"{dst}.value.weight"] = _rows(m, f"{kv}/weight", 1, 2)
        sd[f"{dst}.value.bias"] = _rows(m, f"{kv}/bias", 1, 2)
    else:  # linear_0 = fused (query, key, value), linear_1 = out
        qkv, out = f"{src}/linear_0", f"{src}/linear_1"
        sd[f"{dst}.query.weight"] = _rows(m, f"{qkv}/weight", 0, 3)
        sd[f"{dst}.query.bias"] = _rows(m, f"{qkv}/bias", 0, 3)
        sd[f"{dst}.key.weight"] = _rows(m, f"{qkv}/weight", 1, 3)
        # the key bias slice is dropped: openai-whisper's key has none (and a key bias
        # only adds a per-query constant to the logits, which softmax ignores)
        sd[f"{dst}.value.weight"] = _rows(m, f"{qkv}/weight", 2, 3)
        sd[f"{dst}.value.bias"] = _rows(m, f"{qkv}/bias", 2, 3)
    sd[f"{dst}.out.weight"] = _t(m, f"{out}/weight")
    sd[f"{dst}.out.bias"] = _t(m, f"{out}/bias")


def _layer_norm(m: Ct2Model, src: str, dst: str, sd: dict[str, torch.Tensor]) -> None:
    sd[f"{dst}.weight"] = _t(m, f"{src}/gamma")
    sd[f"{dst}.bias"] = _t(m, f"{src}/beta")


def _block(m: Ct2Model, src: str, dst: str, sd: dict[str, torch.Tensor], cross: bool) -> None:
    _layer_norm(m, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln", sd)
    _attention(m, f"{src}/self_attention", f"{dst}.attn", sd, cross=False)
    if cross:
        _layer_norm(m, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln", sd)
        _attention(m, f"{src}/attention", f"{dst}.cross_attn", sd, cross=True)
    _layer_norm(m, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln", sd)
    sd[f"{dst}.mlp.0.weight"] = _t(m, f"{src}/ffn/linear_0/weight")
    sd[f"{dst}.mlp.0.bias"] = _t(m, f"{src}/ffn/linear_0/bias")
    sd[f"{dst}.mlp.2.weight"] = _t(m, f"{src}/ffn/linear_1/weight")
    sd[f"{dst}.mlp.2.bias"] = _t(m, f"{src}/ffn/linear_1/bias")


def _check_flags(m: Ct2Model) -> None:
    for name, want in _EXPECTED_FLAGS.items():
        got = m.scalar(name)
        if got is not None and got != want:
            raise ModelError(f"{m.path}: not a standard Whisper model ({name} = {got}, expected {want})")
    proj = "decoder/projection/weight"
    if proj in m and m._resolve(proj) != m._resolve("decoder/embeddings/weight"):
        if not np.array_equal(m.raw(proj), m.raw("decoder/embeddings/weight")):
            raise ModelError(f"{m.path}: output projection is not tied to the embeddings")


def _alignment_mask(m: Ct2Model, dims: ModelDimensions) -> torch.Tensor:
    """config.json ``alignment_heads`` as openai-whisper's bool mask [n_text_layer, n_text_head]."""
    mask = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
    heads = m.config.get("alignment_heads")
    if heads is None:  # openai-whisper's default: all heads of the second half of the layers
        mask[dims.n_text_layer // 2 :] = True
        return mask
    try:
        for layer, head in heads:
            if not (0 <= int(layer) < dims.n_text_layer and 0 <= int(head) < dims.n_text_head):
                raise ValueError(f"head {[layer, head]} out of range")
            mask[int(layer), int(head)] = True
    except (TypeError, ValueError) as e:
        raise ModelError(f"{m.path / 'config.json'}: bad alignment_heads ({e})") from None
    return mask


class _SkipInit(TorchFunctionMode):
    """Skip the random initialisation of new parameters (they are all overwritten after)."""

    _SKIP = {
        torch.nn.init.kaiming_uniform_,
        torch.nn.init.uniform_,
        torch.nn.init.normal_,
        torch.Tensor.uniform_,
        torch.Tensor.normal_,
    }

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        if func in self._SKIP:
            return args[0] if args else kwargs.get("tensor")
        return func(*args, **kwargs)


def empty_whisper(dims: ModelDimensions) -> Whisper:
    """A Whisper with uninitialised parameters (fast); fill every one before use."""
    with _SkipInit():
        return Whisper(dims)


def check_state_dict(sd: dict[str, Any], want: dict[str, tuple[int, ...]], where: Path) -> None:
    """Raise ModelError unless ``sd`` has exactly the keys and shapes of ``want``."""
    missing = sorted(set(want) - set(sd))
    extra = sorted(set(sd) - set(want))
    wrong = [
        f"{k} {list(getattr(sd[k], 'shape', []))} != {list(want[k])}"
        for k in want
        if k in sd and (not isinstance(sd[k], torch.Tensor) or tuple(sd[k].shape) != want[k])
    ]
    for what, items in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            raise ModelError(f"{where}: {what} parameters: {', '.join(items[:3])}{more}")


def expected_shapes(dims: ModelDimensions) -> dict[str, tuple[int, ...]]:
    """Every entry of openai-whisper's state dict for ``dims`` and its shape."""
    return {k: tuple(v.shape) for k, v in empty_whisper(dims).state_dict().items()}


def ct2_to_checkpoint(m: Ct2Model) -> dict[str, Any]:
    """An openai-whisper checkpoint dict (float32) from a parsed CTranslate2 Whisper model."""
    if m.spec != "WhisperSpec":
        raise ModelError(f"{m.path}: not a Whisper model (CTranslate2 spec {m.spec!r}, expected 'WhisperSpec')")
    _check_flags(m)
    dims = _dims(m)
    sd: dict[str, torch.Tensor] = {}
    for side in ("encoder", "decoder"):
        pos = _first(m, f"{side}/position_encodings/encodings", f"{side}/position_encodings")
        sd[f"{side}.positional_embedding"] = _t(m, pos)
    for i in (1, 2):
        sd[f"encoder.conv{i}.weight"] = _t(m, f"encoder/conv{i}/weight")
        sd[f"encoder.conv{i}.bias"] = _t(m, f"encoder/conv{i}/bias")
    for i in range(dims.n_audio_layer):
        _block(m, f"encoder/layer_{i}", f"encoder.blocks.{i}", sd, cross=False)
    _layer_norm(m, "encoder/layer_norm", "encoder.ln_post", sd)
    sd["decoder.token_embedding.weight"] = _t(m, "decoder/embeddings/weight")
    for i in range(dims.n_text_layer):
        _block(m, f"decoder/layer_{i}", f"decoder.blocks.{i}", sd, cross=True)
    _layer_norm(m, "decoder/layer_norm", "decoder.ln", sd)
    check_state_dict(sd, expected_shapes(dims), m.path)
    return {
        "dims": dims.__dict__.copy(),
        "model_state_dict": sd,
        "alignment_heads": _alignment_mask(m, dims).to_sparse(),
    }


def convert_ct2(folder: str | Path, parts: Sequence[Path] | None = None) -> dict[str, Any]:
    """Read a CTranslate2 Whisper folder and return the openai-whisper checkpoint dict."""
    with read_ct2(folder, parts) as m:
        return ct2_to_checkpoint(m)


# ---------------------------------------------------------------- the cache


def _source_files(folder: Path, parts: Sequence[Path] | None) -> list[Path]:
    files = list(parts) if parts else model_bin_parts(folder)
    return [folder / "config.json", *files]


def converted_path(folder: str | Path, parts: Sequence[Path] | None = None, name: str | None = None) -> Path:
    """Where the conversion of this source, in its current state (size + mtime), is cached."""
    folder = Path(folder).resolve()
    files = _source_files(folder, parts)
    state = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            raise ModelError(f"{folder}: missing model file {f.name}") from None
        state.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    where = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    key = hashlib.sha256(json.dumps([CONVERTER_VERSION, state]).encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name or folder.name) or "model"
    return cache_dir() / "converted" / f"{stem}-{where}-{key}.pt"


def _save_atomic(obj: Any, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _remove_stale(target: Path) -> None:
    stem, where, _ = target.stem.rsplit("-", 2)
    for old in target.parent.glob(f"{stem}-{where}-*.pt"):
        if old != target:
            try:
                old.unlink()
            except OSError:
                pass


def load_converted(
    folder: str | Path, parts: Sequence[Path] | None = None, name: str | None = None
) -> tuple[dict[str, Any], Path]:
    """The checkpoint of a CTranslate2 folder: from the cache, or converted now and cached."""
    target = converted_path(folder, parts, name)
    if target.is_file():
        try:
            return torch.load(target, map_location="cpu", weights_only=True), target
        except Exception as e:  # damaged cache entry: convert again
            log.warning("cached conversion %s is unreadable (%s); converting again", target, e)
    log.info("converting %s -> %s", folder, target)
    ckpt = convert_ct2(folder, parts)
    try:
        _save_atomic(ckpt, target)
        _remove_stale(target)
    except OSError as e:  # a read-only cache must not stop the model from loading
        log.warning("could not cache the converted model at %s: %s", target, e)
    return ckpt, target


# ---------------------------------------------------------------- checkpoint -> model


def heads_mask_from_dump(dump: bytes | str, dims: ModelDimensions) -> torch.Tensor:
    """openai-whisper's ``_ALIGNMENT_HEADS`` base85 dump as a dense bool mask."""
    array = np.frombuffer(gzip.decompress(base64.b85decode(dump)), dtype=bool).copy()
    return torch.from_numpy(array).reshape(dims.n_text_layer, dims.n_text_head)


def _set_heads(model: Whisper, mask: torch.Tensor | None, where: Path) -> None:
    dims = model.dims
    if mask is None:
        mask = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
        mask[dims.n_text_layer // 2 :] = True
    mask = mask.to_dense() if mask.is_sparse else mask
    if tuple(mask.shape) != (dims.n_text_layer, dims.n_text_head):
        raise ModelError(f"{where}: alignment_heads mask {list(mask.shape)} does not fit the decoder")
    model.register_buffer("alignment_heads", mask.to(torch.bool).to_sparse(), persistent=False)


def model_from_checkpoint(ckpt: Any, where: Path, alignment_heads: torch.Tensor | None = None) -> Whisper:
    """A float32, CPU, eval-mode Whisper from a checkpoint dict, with alignment heads set.

    ``alignment_heads`` (dense or sparse bool mask) wins over the checkpoint's own
    ``alignment_heads``; with neither, openai-whisper's default (last half of the layers).
    """
    if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
        raise ModelError(f"{where}: not a Whisper checkpoint (needs 'dims' and 'model_state_dict')")
    try:
        dims = ModelDimensions(**ckpt["dims"])
    except TypeError as e:
        raise ModelError(f"{where}: bad model dims ({e})") from None
    sd = ckpt["model_state_dict"]
    if not isinstance(sd, dict):
        raise ModelError(f"{where}: model_state_dict is not a dict")
    model = empty_whisper(dims)
    check_state_dict(sd, {k: tuple(v.shape) for k, v in model.state_dict().items()}, where)
    model.load_state_dict(sd, assign=True)
    if alignment_heads is None:
        alignment_heads = ckpt.get("alignment_heads")
    _set_heads(model, alignment_heads, where)
    return model.float().to("cpu").eval()

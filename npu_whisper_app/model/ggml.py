"""Write an openai-whisper model in whisper.cpp's ggml file format (for the whisper.cpp peer).

The layout is the one whisper.cpp's ``models/convert-pt-to-ggml.py`` writes and its
loader (``whisper_model_load`` in ``src/whisper.cpp``) reads, all little-endian int32 /
float32 unless said:

- magic ``0x67676d6c`` ("ggml"), then the 11 hyper-parameters: n_vocab, n_audio_ctx,
  n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head,
  n_text_layer, n_mels, ftype (1: fp16 matrices);
- the mel filterbank: n_mels, n_fft_bins, then the float32 values row-major;
- the tokenizer: count, then each token as its byte length + bytes, in rank order (from
  openai-whisper's own ``gpt2.tiktoken`` / ``multilingual.tiktoken``);
- every tensor of the state dict: n_dims, name length, ftype (0 f32, 1 f16), the dims in
  reverse order, the name, the data. Vectors, the conv biases (reshaped ``[n, 1]``) and
  the positional embeddings are float32, the other matrices float16.

So whisper.cpp runs the same weights as our pipeline (the checkpoint's fp16 numbers).
"""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

MAGIC = 0x67676D6C
F32_NAMES = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding", "decoder.positional_embedding")


def _tokens(multilingual: bool) -> list[bytes]:
    import whisper

    name = "multilingual.tiktoken" if multilingual else "gpt2.tiktoken"
    path = Path(whisper.__file__).parent / "assets" / name
    ranks: list[tuple[int, bytes]] = []
    for line in path.read_bytes().splitlines():
        if line:
            tok, rank = line.split()
            ranks.append((int(rank), base64.b64decode(tok)))
    return [t for _, t in sorted(ranks)]


def _i32(fh: BinaryIO, *values: int) -> None:
    fh.write(struct.pack("<" + "i" * len(values), *values))


def write_ggml(model: torch.nn.Module, path: str | Path) -> Path:
    """Write ``model`` (an openai-whisper ``Whisper``, the reference encoder attached)
    as ``path`` (fp16 matrices, as whisper.cpp's converter does)."""
    import whisper.audio as wa

    d = model.dims
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".part")
    state = {k: v for k, v in model.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    with open(tmp, "wb") as fh:
        _i32(fh, MAGIC, d.n_vocab, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer,
             d.n_text_ctx, d.n_text_state, d.n_text_head, d.n_text_layer, d.n_mels, 1)
        filters = wa.mel_filters(torch.device("cpu"), d.n_mels).numpy().astype("<f4")
        _i32(fh, *filters.shape)
        fh.write(filters.tobytes())
        tokens = _tokens(d.n_vocab >= 51865)
        _i32(fh, len(tokens))
        for tok in tokens:
            _i32(fh, len(tok))
            fh.write(tok)
        for name, tensor in state.items():
            data = tensor.detach().float().squeeze().numpy()
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                data = data.reshape(data.shape[0], 1)
            f32 = data.ndim < 2 or name in F32_NAMES
            data = data.astype("<f4" if f32 else "<f2")
            raw = name.encode()
            _i32(fh, data.ndim, len(raw), 0 if f32 else 1)
            _i32(fh, *reversed(data.shape))
            fh.write(raw)
            fh.write(np.ascontiguousarray(data).tobytes())
    os.replace(tmp, path)
    return path


def ggml_for(model_name: str, cache_dir: str | Path | None = None) -> Path:
    """The ggml file of a named model, written once into the user cache."""
    from .resolve import load_whisper_model

    if cache_dir is None:
        from .convert import cache_dir as app_cache_dir

        cache_dir = app_cache_dir()
    out = Path(cache_dir) / "ggml" / f"ggml-{model_name}.bin"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        write_ggml(load_whisper_model(model_name), out)
    return out

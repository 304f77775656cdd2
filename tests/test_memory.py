"""The loaded engine holds each weight once (issue #15: memory bounded by the window).

openai-whisper's fp32 encoder is freed once the device has prepared its weights, and the
text decoder's matrices are the fast decoder's fp16 copies themselves; the fp32 paths that
read them (prompts over 8 rows, openai-whisper's own decoder forward) give the same
numbers as the fp32 model. tiny.en for speed.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from npu_whisper_app.devices.cpu_native import load_decoder_kernel
from npu_whisper_app.model import resolve
from npu_whisper_app.model.fast_decoder import F16Linear, attach_fast_decoder
from npu_whisper_app.pipeline import Engine


def _storages(tensors) -> dict[int, int]:
    return {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors if isinstance(t, torch.Tensor) and not t.is_sparse and t.numel()}


def _prepared(obj) -> list[torch.Tensor]:
    """Every tensor inside the encoder's prepared weights (dataclasses, lists)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _prepared(o)]
    if hasattr(obj, "__dataclass_fields__"):
        return [t for name in obj.__dataclass_fields__ for t in _prepared(getattr(obj, name))]
    return []


def test_engine_holds_each_weight_once(monkeypatch) -> None:
    loaded = []
    real = resolve.load_whisper_model

    def spy(*args, **kwargs):
        model = real(*args, **kwargs)
        loaded.append((weakref.ref(model.encoder), sum(p.numel() for p in model.encoder.parameters()),
                       sum(p.numel() for p in model.decoder.parameters())))
        return model

    monkeypatch.setattr(resolve, "load_whisper_model", spy)
    engine = Engine("tiny.en", device="cpu", device_options={"precision": "fp32"})
    gc.collect()
    encoder_ref, n_enc, n_dec = loaded[0]
    assert encoder_ref() is None, "openai-whisper's fp32 encoder is still alive"
    fd = engine._fast
    assert fd is not None
    if fd.weight_format != "fp16":
        pytest.skip("no fp16 decoder kernel here: the decoder keeps fp32")
    model = engine._model
    for layer in fd.layers:
        for name in ("q", "k", "v", "o", "cq", "co", "fc1", "fc2"):
            f16 = getattr(layer, name)
            assert isinstance(f16, F16Linear) and f16.full.weight.data_ptr() == f16.weight16.data_ptr()
    assert model.decoder.token_embedding.weight.data_ptr() == fd.logits16.data_ptr()
    assert all(m.weight.dtype == torch.float16 for m in model.decoder.modules() if isinstance(m, nn.Linear))
    # everything the engine holds: the fp32 prepared encoder, the fp16 decoder, small
    # fp32 norms/biases/positions; before, the fp32 encoder and decoder came on top
    held = _storages([*model.parameters(), *model.buffers(), *_prepared(engine._encoder.weights),
                      *(t for params in (fd.step_params or []) for t in params)])
    ideal = 4 * n_enc + 2 * n_dec
    assert sum(held.values()) < 1.1 * ideal, (sum(held.values()) / 2**20, ideal / 2**20)


def test_fp16_only_decoder_gives_the_fp32_numbers() -> None:
    kernel = load_decoder_kernel()
    reference = resolve.load_whisper_model("tiny.en")
    model = resolve.load_whisper_model("tiny.en")
    fd = attach_fast_decoder(model, kernel=kernel, fp16_only=True)
    if fd.weight_format != "fp16":
        pytest.skip("no fp16 decoder kernel here")
    g = torch.Generator().manual_seed(0)
    d = model.dims.n_text_state
    many = torch.randn(1, 20, d, generator=g)  # over 8 rows: the fp32 paths, upcast
    assert torch.equal(fd.layers[0].fc1(many), reference.decoder.blocks[0].mlp[0](many))
    assert torch.equal(fd.logits(many), many @ reference.decoder.token_embedding.weight.T)
    # openai-whisper's own decoder forward (word timestamps, language detection)
    tokens = torch.tensor([[50257, 50362, 440, 2068, 7586]])
    xa = torch.randn(1, 1500, model.dims.n_audio_state, generator=g)
    with torch.no_grad():
        assert torch.equal(model.decoder(tokens, xa), reference.decoder(tokens, xa))


def test_kv_cache_holds_what_a_decode_needs_and_grows_past_it() -> None:
    """The self-attention caches hold the prompt plus openai-whisper's default sample_len
    (n_ctx // 2), not the whole 448-token context; a longer decode grows them, keeping
    what they hold."""
    from npu_whisper_app.model.fast_decoder import FastInference

    model = resolve.load_whisper_model("tiny.en")
    fd = attach_fast_decoder(model, kernel=load_decoder_kernel(), fp16_only=True)
    inf = FastInference(fd, 3)
    feats = torch.randn(2, 1500, model.dims.n_audio_state)
    with torch.inference_mode():
        first = inf.logits(torch.full((2, 3), fd.sot), feats)
        length = inf.cache[0][0].shape[1]
        assert length == 3 + fd.n_ctx // 2 + 1 < fd.n_ctx and first.shape[:2] == (2, 3)
        held = inf.cache[0][0][:, :3].clone()
        inf.offset = length  # the caches are full: the next token makes them grow
        inf.logits(torch.full((2, 4), 100), feats)
    assert inf.cache[0][0].shape[1] == fd.n_ctx and torch.equal(inf.cache[0][0][:, :3], held)

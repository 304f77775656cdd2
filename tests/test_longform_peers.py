"""The whisper.cpp peer's weights: our checkpoint written in ggml format (model/ggml.py),
read back field by field and run by whisper.cpp (pywhispercpp, the ``peers`` extra)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from fixtures_models import EVAL_DEV, JFK_TEXT, decode_16k, normalise

from npu_whisper_app.model.ggml import MAGIC, write_ggml
from npu_whisper_app.model.resolve import load_whisper_model


def _read_header(path: Path) -> tuple[list[int], dict[str, tuple[int, tuple[int, ...], np.ndarray]]]:
    data = path.read_bytes()
    hp = list(struct.unpack_from("<12i", data, 0))
    off = 48
    n_mel, n_fft = struct.unpack_from("<2i", data, off)
    off += 8 + 4 * n_mel * n_fft
    (n_tok,) = struct.unpack_from("<i", data, off)
    off += 4
    for _ in range(n_tok):
        (ln,) = struct.unpack_from("<i", data, off)
        off += 4 + ln
    tensors = {}
    while off < len(data):
        n_dims, name_len, ftype = struct.unpack_from("<3i", data, off)
        off += 12
        dims = struct.unpack_from(f"<{n_dims}i", data, off)
        off += 4 * n_dims
        name = data[off : off + name_len].decode()
        off += name_len
        count = int(np.prod(dims))
        arr = np.frombuffer(data, "<f4" if ftype == 0 else "<f2", count, off)
        off += count * (4 if ftype == 0 else 2)
        tensors[name] = (ftype, tuple(dims), arr)
    hp.append(n_tok)
    return hp, tensors


def test_ggml_file_holds_our_weights_and_whispercpp_reads_it(tmp_path: Path) -> None:
    model = load_whisper_model("tiny.en")
    path = write_ggml(model, tmp_path / "ggml-tiny.en.bin")
    hp, tensors = _read_header(path)
    d = model.dims
    assert hp[:12] == [MAGIC, d.n_vocab, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer,
                       d.n_text_ctx, d.n_text_state, d.n_text_head, d.n_text_layer, d.n_mels, 1]
    assert hp[12] == 50256  # gpt2.tiktoken's ranks (whisper.cpp adds the special tokens)
    state = model.state_dict()
    assert set(tensors) == {k for k in state if k.startswith(("encoder.", "decoder."))}
    ftype, dims, arr = tensors["decoder.blocks.0.attn.query.weight"]
    w = state["decoder.blocks.0.attn.query.weight"]
    assert ftype == 1 and dims == tuple(reversed(w.shape))
    assert np.array_equal(arr.astype(np.float32), w.numpy().reshape(-1))  # fp16-exact checkpoint
    assert tensors["encoder.conv1.bias"][0] == 0 and tensors["encoder.conv1.bias"][1] == (1, d.n_audio_state)
    assert tensors["encoder.positional_embedding"][0] == 0

    from pywhispercpp.model import Model

    wc = Model(str(path), redirect_whispercpp_logs_to=None, n_threads=2, print_progress=False, print_realtime=False)
    segs = wc.transcribe(decode_16k(EVAL_DEV / "jfk.flac"), language="en", temperature=0.0, temperature_inc=0.0)
    assert normalise(" ".join(s.text for s in segs)) == normalise(JFK_TEXT)


def test_isolated_bench_with_batched_peers_and_memory(tmp_path: Path) -> None:
    """bench --e2e with our batched mode, faster-whisper's batched pipeline and
    whisper.cpp, each in its own process: times, WER, peak RSS and the CPU line."""
    import json

    from media import write_wav

    from npu_whisper_app.audio.decode import load_audio
    from npu_whisper_app.bench_e2e import run_e2e_bench

    rows = [("a", EVAL_DEV / "cards" / "001.wav", "ten of clubs"), ("b", EVAL_DEV / "goforward.wav", "go forward ten meters")]
    lines = []
    for rid, src, ref in rows:
        write_wav(tmp_path / f"{rid}.wav", load_audio(src))
        lines.append(json.dumps({"id": rid, "path": f"{rid}.wav", "ref": ref}))
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    data = run_e2e_bench("tiny.en", manifest=tmp_path / "manifest.jsonl", peers=("faster-whisper-batched", "whisper.cpp"),
                         repeat=1, long=False, batched=True, isolate=True)
    names = {"ours", "ours-batched", "faster-whisper-batched", "whisper.cpp"}
    assert all(data["runners"][n]["available"] for n in names), data["runners"]
    entry = data["sets"]["short"]
    assert set(entry["runners"]) == names
    for row in entry["runners"].values():
        assert row["min_s"] > 0 and 100 < row["peak_rss_mb"] < 8000 and row["wer"] is not None and row["wer"] <= 50
    assert data["cpu"]["model"] and "precision auto" in data["text"] and "peak MB" in data["text"]

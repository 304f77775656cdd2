"""``npu-whisper bench --e2e``: JSON structure on a tiny manifest; an absent peer is skipped."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from media import EVAL_DEV, espeak, write_wav

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.cli import main


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("man")
    if (EVAL_DEV / "cards" / "001.wav").exists():
        rows = [("a", EVAL_DEV / "cards" / "001.wav", "ten of clubs"), ("b", EVAL_DEV / "goforward.wav", "go forward ten meters")]
    else:
        rows = [("a", espeak("ten of clubs", d / "a.wav"), "ten of clubs"), ("b", espeak("go forward ten meters", d / "b.wav"), "go forward ten meters")]
    lines = []
    for rid, path, ref in rows:
        local = write_wav(d / f"{rid}.wav", load_audio(path))
        lines.append(json.dumps({"id": rid, "path": local.name, "ref": ref}))
    (d / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return d / "manifest.jsonl"


def _check_report(data: dict, peers: list[str]) -> None:
    assert data["model"] == "tiny.en" and data["repeat"] == 1
    assert set(data["sets"]) == {"short", "long"}
    short, long = data["sets"]["short"], data["sets"]["long"]
    assert short["files"] == 2 and long["files"] == 1 and long["audio_s"] > short["audio_s"]
    for entry in (short, long):
        assert set(entry["runners"]) == {"ours", *peers}
        for row in entry["runners"].values():
            assert row["min_s"] > 0 and row["median_s"] >= row["min_s"] and row["rtf"] > 0 and len(row["elapsed_s"]) == 1
            assert row["texts"] and all(isinstance(t, str) for t in row["texts"])
            assert row["wer"] is not None and 0 <= row["wer"] <= 100
        for p in peers:
            assert entry["ours_speedup"][p]["min"] > 0
    assert data["sets"]["short"]["runners"]["ours"]["wer_vs_openai"] == 0.0  # same words as the reference


def test_bench_e2e_json(manifest: Path, capsys) -> None:
    rc = main(["bench", "--e2e", "--model", "tiny.en", "--manifest", str(manifest), "--repeat", "1", "--peers", "openai", "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    _check_report(data, ["openai"])


def test_bench_e2e_runs_our_variants_beside_ours(manifest: Path, capsys) -> None:
    rc = main(["bench", "--e2e", "--model", "tiny.en", "--manifest", str(manifest), "--repeat", "1", "--peers", "openai", "--also", "short-window", "--short", "--json"])
    assert rc == 0
    entry = json.loads(capsys.readouterr().out)["sets"]["short"]
    assert set(entry["runners"]) == {"ours", "ours+short-window", "openai"}
    assert set(entry["speedups"]) == {"ours", "ours+short-window"}
    assert entry["speedups"]["ours+short-window"]["openai"]["min"] > 0
    assert entry["runners"]["ours+short-window"]["wer"] is not None
    assert main(["bench", "--e2e", "--model", "tiny.en", "--manifest", str(manifest), "--peers", "", "--also", "fp8"]) == 2


def test_absent_peer_is_skipped_with_a_message(manifest: Path, capsys, monkeypatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name, *a, **k):
        if name == "faster_whisper":
            return None
        return real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    rc = main(["bench", "--e2e", "--model", "tiny.en", "--manifest", str(manifest), "--repeat", "1", "--peers", "openai,faster-whisper", "--json"])
    assert rc == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert data["runners"]["faster-whisper"]["available"] is False
    assert "not installed" in data["runners"]["faster-whisper"]["reason"]
    assert "faster-whisper skipped" in out.err
    _check_report(data, ["openai"])


@pytest.mark.skipif(importlib.util.find_spec("faster_whisper") is None, reason="faster-whisper not installed (optional 'peers' extra)")
def test_faster_whisper_peer_when_installed(manifest: Path) -> None:
    from npu_whisper_app.bench_e2e import run_e2e_bench

    data = run_e2e_bench("tiny.en", manifest=manifest, peers=("faster-whisper",), repeat=1, long=False)
    row = data["sets"]["short"]["runners"]["faster-whisper"]
    assert data["runners"]["faster-whisper"]["available"] and row["min_s"] > 0 and row["wer"] is not None

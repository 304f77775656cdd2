"""What NPU numerics cost: encoder error and WER of the NPU kernels' arithmetic vs fp32.

On the recordings of ``eval-dev`` (``manifest.jsonl``: path, reference text), for each
device (``cpu`` fp32, ``reference`` = the NPU kernels' bf16/fp32 arithmetic on the CPU,
``xrt`` = the real xrt host code, through the pyxrt stand-in unless a real NPU is here):

* encoder max-abs error against openai-whisper's own fp32 encoder on the same mel,
* transcripts (``whisper.transcribe``, greedy, language en) and WER against the
  references (openai-whisper's ``EnglishTextNormalizer`` on both sides),
* encoder wall time per window.

    python benchmarks/xrt_numerics.py --model base [--devices cpu reference xrt] [--json out.json]

Weights come from ``npu_whisper_app.model.resolve.load_whisper_model``. Not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import whisper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from npu_whisper_app.devices import device_class  # noqa: E402
from npu_whisper_app.model.encoder import TiledEncoder  # noqa: E402
from npu_whisper_app.profiling import Recorder  # noqa: E402


def load_audio(path: Path) -> np.ndarray:
    try:
        from npu_whisper_app.audio.decode import load_audio as decode  # the app's decoder, when merged

        return decode(path)
    except ImportError:
        pass
    import av

    out = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        for frame in container.decode(audio=0):
            for f in resampler.resample(frame):
                out.append(f.to_ndarray().reshape(-1))
        for f in resampler.resample(None):
            out.append(f.to_ndarray().reshape(-1))
    return np.concatenate(out).astype(np.float32)


def use_standin(dims) -> str:
    """Make ``import pyxrt`` the test stand-in with a fake build for these model dims."""
    path = ROOT / "tests" / "standin" / "pyxrt.py"
    spec = importlib.util.spec_from_file_location("pyxrt", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["pyxrt"] = mod
    spec.loader.exec_module(mod)
    from npu_whisper_app.devices.xrt_manifest import build_manifest

    tmp = Path(tempfile.mkdtemp(prefix="npu-whisper-standin-"))
    mod.write_fake_build(tmp / "build", build_manifest([(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head)]))
    (tmp / "accel").mkdir()
    (tmp / "accel" / "accel0").touch()
    os.environ["NPU_WHISPER_KERNELS"] = str(tmp / "build")
    os.environ["NPU_WHISPER_ACCEL_DIR"] = str(tmp / "accel")
    return str(tmp / "build")


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    r = [norm(x) for x in refs]
    h = [norm(x) for x in hyps]
    return float(jiwer.wer(r, h))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="base")
    ap.add_argument("--eval-dir", type=Path, default=Path("/work/shared/eval-dev"))
    ap.add_argument("--devices", nargs="+", default=["cpu", "reference", "xrt"])
    ap.add_argument("--real-xrt", action="store_true", help="use the real pyxrt/NPU instead of the stand-in")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    try:
        from npu_whisper_app.model.resolve import load_whisper_model
    except ImportError as exc:
        print(f"needs npu_whisper_app.model.resolve.load_whisper_model (weights branch): {exc}", file=sys.stderr)
        return 2
    model = load_whisper_model(args.model).eval()
    fp32_encoder = model.encoder
    dims = model.dims
    if "xrt" in args.devices and not args.real_xrt:
        print(f"xrt: pyxrt stand-in with a fake build in {use_standin(dims)} (numerics = reference kernels)")

    items = [json.loads(line) for line in (args.eval_dir / "manifest.jsonl").read_text().splitlines() if line.strip()]
    if args.limit:
        items = items[: args.limit]
    audio = {it["id"]: load_audio(args.eval_dir / it["path"]) for it in items}
    mels = {
        k: whisper.log_mel_spectrogram(whisper.pad_or_trim(a), dims.n_mels) for k, a in audio.items()
    }
    with torch.no_grad():
        fp32_out = {k: fp32_encoder(m[None])[0] for k, m in mels.items()}

    def transcribe_all() -> dict[str, str]:
        out = {}
        for it in items:
            res = whisper.transcribe(model, audio[it["id"]], language="en", temperature=0.0, fp16=False)
            out[it["id"]] = res["text"].strip()
        return out

    results: dict[str, dict] = {}
    model.encoder = fp32_encoder
    t0 = time.perf_counter()
    texts = transcribe_all()
    print(f"openai-fp32: transcribed in {time.perf_counter() - t0:.1f} s", flush=True)
    results["openai-fp32"] = {"texts": texts, "transcribe_s": time.perf_counter() - t0, "max_abs": 0.0}

    for name in args.devices:
        rec = Recorder()
        dev = device_class(name)(recorder=rec)
        enc = TiledEncoder(fp32_encoder, dims.n_audio_head, dev)
        errs, means, rels, times = [], [], [], []
        for k, m in mels.items():
            enc._cache = None
            t = time.perf_counter()
            with torch.no_grad():
                y = enc(m[None])[0]
            times.append(time.perf_counter() - t)
            diff = (y - fp32_out[k]).abs()
            errs.append(diff.max().item())
            means.append(diff.mean().item())
            rels.append((diff.pow(2).mean().sqrt() / fp32_out[k].pow(2).mean().sqrt()).item())
        model.encoder = enc
        t0 = time.perf_counter()
        texts = transcribe_all()
        results[name] = {
            "texts": texts,
            "transcribe_s": time.perf_counter() - t0,
            "max_abs": max(errs),
            "mean_max_abs": float(np.mean(errs)),
            "mean_abs": float(np.mean(means)),
            "rel_rms": float(np.mean(rels)),
            "encoder_s_per_window": float(np.median(times)),
            "dispatches_per_window": len(rec.events) // max(1, enc.windows_done),
        }
        model.encoder = fp32_encoder
        dev.close()
        print(f"{name}: max-abs {max(errs):.4g}, transcribed in {results[name]['transcribe_s']:.1f} s", flush=True)

    scored = [it for it in items if it.get("ref")]
    refs = [it["ref"] for it in scored]
    base_texts = results["openai-fp32"]["texts"]
    print(f"\nmodel {args.model}: {len(items)} recordings, {len(scored)} with a reference\n")
    print(f"{'encoder':<14} {'max-abs vs fp32':>16} {'mean abs':>10} {'rel rms':>9} {'WER':>7} {'same text as fp32':>18} {'enc s/window':>13}")
    for name, r in results.items():
        r["wer"] = wer(refs, [r["texts"][it["id"]] for it in scored])
        r["same_as_fp32"] = sum(r["texts"][k] == base_texts[k] for k in base_texts)
        print(
            f"{name:<14} {r['max_abs']:>16.4g} {r.get('mean_abs', 0.0):>10.3g} {r.get('rel_rms', 0.0):>9.2e} {100 * r['wer']:>6.2f}% "
            f"{r['same_as_fp32']:>10}/{len(items):<7} {r.get('encoder_s_per_window', float('nan')):>13.3f}"
        )
    diffs = [(k, base_texts[k], r["texts"][k], n) for n, r in results.items() for k in base_texts if r["texts"][k] != base_texts[k]]
    for k, a, b, n in diffs:
        print(f"  {n}: {k}: fp32 {a!r} -> {b!r}")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

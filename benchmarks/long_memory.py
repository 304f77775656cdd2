"""Peak resident memory and time of transcribing a 1-hour (or N-hour) recording.

    python benchmarks/long_memory.py [--hours 1] [--model base] [--mode batched|sequential|both] [--precision fp32|bf16|int8|auto]

Builds the recording once in a temp dir: the long-form set's recordings (eval-dev clips,
espeak-ng sentences, pauses; ``longform/testset.py``) repeated to the length, written as
a 16 kHz WAV a piece at a time. Each mode then runs in its own process, which reports
its ``ru_maxrss`` (peak resident memory from its start: Python, torch, the model, the
work), the time, the audio length and the number of segments. Prints the CPU model and
flags. ``batched`` reads the file forward (``audio/stream.py``) and never holds it
whole; ``sequential`` is the Engine's openai-whisper loop on the whole decoded array.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
import torch
from npu_whisper_app.pipeline import Engine, TranscribeOptions
from npu_whisper_app.longform import BatchedStats
mode, model, path, precision = sys.argv[1:5]
t0 = time.perf_counter()
from npu_whisper_app.profiling import Recorder
# as `npu-whisper transcribe` runs without --profile: no dispatch event kept
eng = Engine(model, device="cpu", device_options={"precision": precision}, recorder=Recorder(keep=False))
load = time.perf_counter() - t0
rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
opts = TranscribeOptions(language="en")
t0 = time.perf_counter()
stats = BatchedStats()
if mode == "batched":
    res = eng.transcribe_batched_many([path], opts, stats=stats)[0]
else:
    res = eng.transcribe(path, opts).result
elapsed = time.perf_counter() - t0
out = dict(mode=mode, load_s=load, elapsed_s=elapsed, segments=len(res["segments"]), words=len(res["text"].split()),
           peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_after_load_mb=rss_loaded,
           chunks=stats.chunks, batches=stats.batches, fallback_rows=stats.fallback_rows, loops_stopped=stats.loops_stopped)
print("@@" + json.dumps(out))
"""


def build(hours: float, out: Path) -> float:
    from npu_whisper_app.audio.decode import load_audio
    from npu_whisper_app.bench_e2e import DEFAULT_MANIFEST
    from npu_whisper_app.longform.testset import build_longform_set

    manifest = build_longform_set(DEFAULT_MANIFEST)
    pieces = [load_audio(manifest.parent / json.loads(line)["path"]) for line in manifest.read_text().splitlines() if line.strip()]
    target = int(hours * 3600 * 16000)
    n = 0
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        k = 0
        while n < target:
            p = pieces[k % len(pieces)][: target - n]
            w.writeframes((np.clip(p, -1, 1) * 32767).astype("<i2").tobytes())
            n += p.size
            k += 1
    return n / 16000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--model", default="base")
    ap.add_argument("--mode", choices=["batched", "sequential", "both"], default="batched")
    ap.add_argument("--precision", choices=["fp32", "bf16", "int8", "auto"], default="auto", help="the cpu device's (the encoder's prepared weights; default: what transcribe uses)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from npu_whisper_app.bench_e2e import cpu_summary

    cpu = cpu_summary()
    print(f"CPU: {cpu['model']} · {cpu['cores']} cores · flags {' '.join(cpu['flags'])} · avx512_bf16 {'yes' if cpu['avx512_bf16'] else 'no'}")
    results = []
    with tempfile.TemporaryDirectory(prefix="long-memory-") as tmp:
        path = Path(tmp) / "long.wav"
        t0 = time.perf_counter()
        seconds = build(args.hours, path)
        print(f"built {seconds / 60:.1f} min of audio ({path.stat().st_size / 1e6:.0f} MB WAV) in {time.perf_counter() - t0:.1f} s")
        modes = ["batched", "sequential"] if args.mode == "both" else [args.mode]
        for mode in modes:
            proc = subprocess.run([sys.executable, "-c", CHILD, mode, args.model, str(path), args.precision], capture_output=True, text=True, cwd=ROOT,
                                  env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
            line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith("@@")), None)
            if line is None:
                print(f"{mode}: failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-3:]}")
                continue
            r = json.loads(line[2:])
            r["audio_s"] = seconds
            r["rtf"] = seconds / r["elapsed_s"]
            results.append(r)
            print(f"{mode:<10} {args.model} {args.precision}: {r['elapsed_s']:.1f} s ({r['rtf']:.1f}x real time), peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(after loading the model {r['rss_after_load_mb']:.0f} MB), {r['segments']} segments, {r['words']} words"
                  + (f", {r['chunks']} chunks in {r['batches']} batches, {r['fallback_rows']} fallback rows, {r['loops_stopped']} loops stopped" if mode == "batched" else ""))
    if args.json:
        print(json.dumps({"cpu": cpu, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

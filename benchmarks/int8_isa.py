"""The encoder's 30 s window at each precision, with oneDNN/MKL/ATen limited to older
instruction sets to stand for CPUs this machine is not (no bf16; no VNNI).

    python benchmarks/int8_isa.py [--model base] [--precisions fp32,int8,bf16] [--repeat 4]

Each instruction-set limit runs in its own process (the limits are read at start-up):
``ONEDNN_MAX_CPU_ISA`` (oneDNN: bf16 and int8 gemms), ``MKL_ENABLE_INSTRUCTIONS`` and
``ATEN_CPU_CAPABILITY`` (fp32 gemms, elementwise ops). Our compiled attention kernel keeps
this CPU's instructions in every row (the same for every precision), so the ratios are
the gemms'. Prints the CPU and its flags, then the best of ``--repeat`` per precision.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LIMITS = {
    "this CPU": {},
    "AVX-512 VNNI, no bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},
    "AVX2, no VNNI": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}


def _one(model: str, precisions: list[str], repeat: int) -> str:
    import time

    import torch
    import whisper

    from npu_whisper_app.audio.decode import load_audio
    from npu_whisper_app.pipeline import Engine

    audio = load_audio(ROOT.parent / "shared" / "eval-dev" / "jfk.flac")
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)))[None]
    out = []
    for p in precisions:
        engine = Engine(model, "cpu", device_options={"precision": p})
        engine.encode(mel)
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            engine.encode(mel)
            best = min(best, time.perf_counter() - t)
        out.append(f"{p} {best:.3f} s")
        engine.close()
    return " | ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="base")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    precisions = [p for p in args.precisions.split(",") if p]
    if args.child:
        print(_one(args.model, precisions, args.repeat), flush=True)
        return 0
    from npu_whisper_app.bench_e2e import cpu_summary

    cpu = cpu_summary()
    print(f"CPU: {cpu['model']} · {cpu['cores']} logical cores · flags {' '.join(cpu['flags'])} · precision auto -> {cpu['precision_auto']}")
    print(f"{args.model}: one 30 s window (jfk.flac), best of {args.repeat}")
    for name, env in LIMITS.items():
        cmd = [sys.executable, __file__, "--child", "--model", args.model, "--precisions", args.precisions, "--repeat", str(args.repeat)]
        res = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
        line = res.stdout.strip().splitlines()[-1] if res.returncode == 0 and res.stdout.strip() else f"failed: {res.stderr.strip()[-300:]}"
        print(f"  {name:<24} {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

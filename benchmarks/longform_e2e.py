"""Long recordings, every system in its own process: time, WER and peak memory.

    python benchmarks/longform_e2e.py [--model base] [--repeat 1] [--minutes 3 5] [--fallback]
        [--precision fp32|bf16|auto] [--peers openai,faster-whisper,faster-whisper-batched,whisper.cpp]
        [--no-short] [--json-out FILE]

What ``npu-whisper bench --e2e`` runs with ``batched=True, longform=True, isolate=True``:
ours (the sequential openai-whisper loop), ours-batched (VAD chunks, batch 8) and the
peers, on eval-dev's clips and the long-form set (``longform/testset.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from npu_whisper_app.bench_e2e import run_e2e_bench
    from npu_whisper_app.peers import DecodeSettings

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="base")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--minutes", type=float, nargs="+", default=[3.0, 5.0])
    ap.add_argument("--fallback", action="store_true", help="openai-whisper's temperature fallback (0.0, 0.2, ... 1.0) for every system")
    ap.add_argument("--precision", default=None, help="our cpu device's precision (default: the device's default)")
    ap.add_argument("--peers", default="openai,faster-whisper,faster-whisper-batched,whisper.cpp")
    ap.add_argument("--no-short", action="store_true")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    temps = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if args.fallback else (0.0,)
    report = run_e2e_bench(
        args.model,
        peers=tuple(p for p in args.peers.split(",") if p),
        repeat=args.repeat,
        long=False,
        short=not args.no_short,
        settings=DecodeSettings(temperatures=temps),
        device_options={"precision": args.precision} if args.precision else None,
        batched=True,
        longform=True,
        longform_minutes=tuple(args.minutes),
        isolate=True,
    )
    print(report["text"])
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What ``--precision auto`` picks here, and what bf16 does to the numbers and the words.

    python benchmarks/precision_check.py [--model base] [--precisions fp32,bf16,int8] [--mode both|batched|sequential]
                                         [--manifest ../shared/eval-dev/manifest.jsonl]

For every eval-dev clip: the encoder's max-abs error against openai-whisper's fp32
encoder (each precision on our cpu device), the 30 s window's encode time of each, and
the transcription (greedy, English; batched mode and openai-whisper's loop) with each:
how many clips read word for word as the first precision's, and the WER of each against the references. Prints the CPU and
flags.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import torch
    import whisper

    from npu_whisper_app.bench_e2e import DEFAULT_MANIFEST, cpu_summary, load_items, normalize, wer
    from npu_whisper_app.pipeline import Engine, TranscribeOptions

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="base")
    ap.add_argument("--manifest", default=str(DEFAULT_MANIFEST))
    ap.add_argument("--precisions", default="fp32,bf16,int8", help="comma-separated; the first is the one the others are read against")
    ap.add_argument("--mode", choices=["both", "batched", "sequential"], default="both", help="transcribe in the batched (default) mode, openai-whisper's loop, or both")
    args = ap.parse_args()
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    cpu = cpu_summary()
    print(f"CPU: {cpu['model']} · flags {' '.join(cpu['flags'])} · precision auto -> {cpu['precision_auto']}: {cpu['precision_reason']}")
    items = load_items(args.manifest)
    engines = {p: Engine(args.model, "cpu", device_options={"precision": p}) for p in precisions}
    ref_engine = engines[precisions[0]]
    errs: dict[str, list[float]] = {p: [] for p in engines}
    times: dict[str, list[float]] = {p: [] for p in engines}
    modes = {"batched": True, "sequential": False} if args.mode == "both" else {args.mode: args.mode == "batched"}
    texts: dict[tuple[str, str], list[str]] = {(p, m): [] for p in engines for m in modes}
    for it in items:
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(it.audio))[None]
        with torch.inference_mode():
            want = ref_engine.encode(mel, reference=True)
            for p, eng in engines.items():
                t0 = time.perf_counter()
                got = eng.encode(mel)
                times[p].append(time.perf_counter() - t0)
                errs[p].append((got - want).abs().max().item())
        for p, eng in engines.items():
            for m, batched in modes.items():
                texts[(p, m)].append(eng.transcribe(it.audio, TranscribeOptions(language="en", temperature=(0.0,), batched=batched)).text)
    refs = [it.ref or "" for it in items]
    first = precisions[0]
    for p in engines:
        wers = ", ".join(f"{m} {wer(refs, texts[(p, m)]):.1f}%" for m in modes)
        print(f"{p}: encoder max-abs vs openai-whisper fp32: max {max(errs[p]):.4f}, median {statistics.median(errs[p]):.4f}; "
              f"30 s window {statistics.median(times[p]):.3f} s (median); WER {wers}")
    for p in precisions[1:]:
        for m in modes:
            a_texts, b_texts = texts[(first, m)], texts[(p, m)]
            same = sum(normalize(a) == normalize(b) for a, b in zip(a_texts, b_texts))
            print(f"{p} reads {same} of {len(items)} clips word for word as {first} ({m} mode)")
            for it, a, b in zip(items, a_texts, b_texts):
                if normalize(a) != normalize(b):
                    print(f"  {it.id}: {first} {a.strip()!r} | {p} {b.strip()!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

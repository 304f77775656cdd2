"""The batched mode's int8 decoding against the same mode with the fp16 decoder: time,
WER and the words that differ, on the long-form set and on eval-dev's clips.

    python benchmarks/decoder_int8_check.py [--model base] [--rounds 2] [--minutes 3 5]

int8 decoding (``FastDecoder.inference_factory(int8=True)``, what ``transcribe`` does in
the batched mode): the windows' cross keys/values as int8 with one scale per (frame,
head) and, where the CPU has AVX512-VNNI, the step's products and the vocabulary's as
int8. Both variants run in this one process, alternating, temperature fallback on.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from npu_whisper_app.audio.decode import load_audio
    from npu_whisper_app.bench_e2e import cpu_summary, normalize, wer
    from npu_whisper_app.longform.testset import build_longform_set
    from npu_whisper_app.pipeline import Engine, TranscribeOptions

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="base")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--minutes", type=float, nargs="+", default=[3.0, 5.0])
    ap.add_argument("--manifest", default=str(ROOT.parent / "shared/eval-dev/manifest.jsonl"))
    args = ap.parse_args()

    cpu = cpu_summary()
    print(f"CPU: {cpu['model']} · {cpu['cores']} cores · flags {' '.join(cpu['flags'])} · avx512_bf16 {'yes' if cpu['avx512_bf16'] else 'no'}")
    print(f"precision auto -> {cpu['precision_auto']}; batched decoder: {cpu['batched_decoder']}")
    manifest = Path(args.manifest)
    long_manifest = build_longform_set(manifest, minutes=tuple(args.minutes))
    sets = {}
    for name, m in (("long-form", long_manifest), ("clips", manifest)):
        rows = [json.loads(line) for line in m.read_text().splitlines() if line.strip()]
        sets[name] = ([load_audio(m.parent / r["path"]) for r in rows], [r.get("ref") or "" for r in rows])

    engine = Engine(args.model, "cpu")
    opts = TranscribeOptions(language="en", batched=True)
    engine.transcribe(sets["clips"][0][0], opts)  # warm: kernels, int8 copies
    make = engine._inference
    variants = {"int8": make, "fp16": lambda ctx, int8=False: make(ctx, False)}
    times: dict[tuple[str, str], list[float]] = {}
    texts: dict[tuple[str, str], list[str]] = {}
    for _ in range(args.rounds):
        for variant, factory in variants.items():
            engine._inference = factory  # type: ignore[method-assign]
            for name, (audio, _refs) in sets.items():
                t0 = time.perf_counter()
                texts[variant, name] = [engine.transcribe(a, opts).text for a in audio]
                times.setdefault((variant, name), []).append(time.perf_counter() - t0)
    for name, (_audio, refs) in sets.items():
        print(f"\n[{name}] {len(refs)} recording(s)")
        for variant in variants:
            w = wer(refs, texts[variant, name])
            print(f"  {variant:5s} min {min(times[variant, name]):6.2f} s  WER {w:5.2f} %")
        same = sum(normalize(a) == normalize(b) for a, b in zip(texts["int8", name], texts["fp16", name]))
        print(f"  same words: {same} of {len(refs)}; int8 / fp16 time {min(times['int8', name]) / min(times['fp16', name]):.3f}")
        for a, b in zip(texts["fp16", name], texts["int8", name]):
            xs, ys = normalize(a).split(), normalize(b).split()
            for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, xs, ys).get_opcodes():
                if op != "equal":
                    print(f"    fp16 {' '.join(xs[i1:i2]) or '-'!r} -> int8 {' '.join(ys[j1:j2]) or '-'!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

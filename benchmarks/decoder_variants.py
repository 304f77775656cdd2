"""Decoder / short-window variants of our pipeline on eval-dev, alternating in one run.

    PYTHONPATH=. python benchmarks/decoder_variants.py base 3 openai,none,int8,int8-logits,sw3 [long]

Variants: ``openai`` (openai-whisper's own decoder inference with hooks), ``none`` (fast
decoder as it ships: fp16 weight copies, one compiled call per token), ``fp32`` (fast
decoder, Python loop on the fp32 weights: no compiled kernel), ``fp16-loop`` (fp16 products
and cross-attention from the Python loop, no one-call step), ``int8`` / ``int8-logits``
(fast decoder quantised), ``swN`` (fast decoder + short window with N s margin). Prints total and non-encoder time (min/median), RTF,
how many transcripts equal the first variant's, WER, and the differing texts.
"""

import os
import statistics
import sys
import time

from npu_whisper_app.bench_e2e import load_items, long_recording, wer
from npu_whisper_app.pipeline import Engine, TranscribeOptions

name, rounds, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
items = load_items()
sets = {"short": items}
if "long" in sys.argv[4:]:
    sets["long"] = [long_recording(items)]
engines = {}
for v in variants:
    if v.startswith("sw"):
        engines[v] = Engine(name, "cpu", decoder="fast", short_window=True)
        engines[v].short_window_margin_s = float(v[2:])
    elif v == "openai":
        engines[v] = Engine(name, "cpu", decoder="openai")
    elif v in ("fp32", "fp16-loop"):
        engines[v] = Engine(name, "cpu", decoder="fast-fp32" if v == "fp32" else "fast-loop")
    else:
        engines[v] = Engine(name, "cpu", decoder="fast", decoder_quant=v)
opts = TranscribeOptions(language="en", temperature=(0.0,))
texts = {s: {v: [] for v in engines} for s in sets}
times = {s: {v: [] for v in engines} for s in sets}
dec = {s: {v: [] for v in engines} for s in sets}
for e in engines.values():
    e.transcribe(items[0].audio, opts)
for r in range(rounds):
    for s, its in sets.items():
        tot = {v: 0.0 for v in engines}
        dtot = {v: 0.0 for v in engines}
        for it in its:
            for v, e in engines.items() if r % 2 == 0 else reversed(engines.items()):
                e.recorder.clear()
                e.forget_cached_window()
                t = time.perf_counter()
                res = e.transcribe(it.audio, opts)
                dt = time.perf_counter() - t
                tot[v] += dt
                dtot[v] += dt - res.encoder_s
                if r == 0:
                    texts[s][v].append(res.text)
        for v in engines:
            times[s][v].append(tot[v])
            dec[s][v].append(dtot[v])
print("load", os.getloadavg())
for s, its in sets.items():
    aud = sum(it.seconds for it in its)
    for v in engines:
        same = sum(a == b for a, b in zip(texts[s][v], texts[s][variants[0]]))
        w = wer([it.ref or "" for it in its], texts[s][v])
        print(
            f"{s:5s} {v:12s} total min {min(times[s][v]):6.2f} med {statistics.median(times[s][v]):6.2f}  "
            f"non-encoder min {min(dec[s][v]):6.2f} med {statistics.median(dec[s][v]):6.2f}  RTF {aud / min(times[s][v]):5.1f}  "
            f"same-as-{variants[0]} {same}/{len(its)}  WER {w if w is None else round(w, 2)}"
        )
for s in sets:
    for v in variants[1:]:
        for a, b in zip(texts[s][variants[0]], texts[s][v]):
            if a != b:
                print("DIFF", s, v, repr(a), "|", repr(b))

"""Encoder variants (ours fp32 / bf16 / int8 / single-thread) against openai-whisper's, alternating.

    python benchmarks/encoder_variants.py base 8 [bf16] [int8] [nopool]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import torch

from npu_whisper_app.bench import mel_windows, synthetic_audio
from npu_whisper_app.pipeline import Engine

name = sys.argv[1] if len(sys.argv) > 1 else "base"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
variants = {"ours fp32": {}}
if "bf16" in sys.argv:
    variants["ours bf16"] = {"precision": "bf16"}
if "int8" in sys.argv:
    variants["ours int8"] = {"precision": "int8"}
if "nopool" in sys.argv:
    variants["ours nopool"] = {"threads": 1}
engines = {k: Engine(name, "cpu", device_options=opts) for k, opts in variants.items()}
first = next(iter(engines.values()))
mel = mel_windows(synthetic_audio(30), 1, first.n_mels)[0][None]
cfgs = {"openai": lambda m: first.encode(m, reference=True)}
cfgs.update({k: e.encode for k, e in engines.items()})
times: dict[str, list[float]] = {k: [] for k in cfgs}
with torch.inference_mode():
    ref = cfgs["openai"](mel)
    for k, enc in cfgs.items():
        print(k, "max err", float((enc(mel) - ref).abs().max()))
    for r in range(rounds):
        for k, enc in cfgs.items() if r % 2 == 0 else reversed(cfgs.items()):
            t = time.perf_counter()
            enc(mel)
            times[k].append(time.perf_counter() - t)
print("load", os.getloadavg())
for k, v in times.items():
    ratio_min = min(times["openai"]) / min(v)
    ratio_med = statistics.median(times["openai"]) / statistics.median(v)
    print(f"{k:14s} min {min(v):.3f} med {statistics.median(v):.3f}  ratio(openai/this) min {ratio_min:.2f} med {ratio_med:.2f}")

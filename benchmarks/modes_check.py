"""Which mode reads closer to the references: the batched mode (the default) against
openai-whisper's sequential loop (``--batched False``), on eval-dev's referenced clips as
recorded and made harder.

    python benchmarks/modes_check.py [--model base] [--precision auto]

Conditions: as recorded; 40 dB down; white noise at 10 dB SNR; both (noise, then 40 dB
down); 5 s of silence before and 2 s after. Prints the CPU, and per condition each mode's
time over the clips, its WER against the references (openai-whisper's English
normaliser) and how many clips both modes read word for word alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from npu_whisper_app.audio import SAMPLE_RATE  # noqa: E402
from npu_whisper_app.bench_e2e import cpu_summary, load_items, normalize, wer  # noqa: E402
from npu_whisper_app.pipeline import Engine, TranscribeOptions  # noqa: E402


def _noise(a: np.ndarray, rng: np.random.Generator, snr_db: float = 10.0) -> np.ndarray:
    power = float(np.mean(a.astype(np.float64) ** 2))
    return (a + rng.standard_normal(a.size).astype(np.float32) * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))).astype(np.float32)


CONDITIONS = {
    "as recorded": lambda a, rng: a,
    "40 dB down": lambda a, rng: (a * 0.01).astype(np.float32),
    "noise, SNR 10 dB": lambda a, rng: _noise(a, rng),
    "noise, 40 dB down": lambda a, rng: (_noise(a, rng) * 0.01).astype(np.float32),
    "5 s silence before": lambda a, rng: np.concatenate([np.zeros(5 * SAMPLE_RATE, np.float32), a, np.zeros(2 * SAMPLE_RATE, np.float32)]),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="base")
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    cpu = cpu_summary()
    print(f"CPU: {cpu['model']} · flags {' '.join(cpu['flags'])} · precision {args.precision} (auto -> {cpu['precision_auto']})")
    items = [it for it in load_items() if it.ref]
    refs = [it.ref or "" for it in items]
    engine = Engine(args.model, "cpu", device_options={"precision": args.precision})
    rng = np.random.default_rng(0)
    print(f"{len(items)} referenced clips, {args.model}, English, temperature fallback (openai-whisper's defaults)")
    for name, make in CONDITIONS.items():
        audios = [make(it.audio, rng) for it in items]
        row = {}
        for mode, batched in (("sequential", False), ("batched", True)):
            t = time.perf_counter()
            hyps = [engine.transcribe(a, TranscribeOptions(language="en", batched=batched)).text for a in audios]
            row[mode] = (time.perf_counter() - t, wer(refs, hyps), hyps)
        same = sum(normalize(a) == normalize(b) for a, b in zip(row["sequential"][2], row["batched"][2]))
        print(f"  {name:<20} sequential {row['sequential'][0]:5.2f} s WER {row['sequential'][1]:5.1f} % | "
              f"batched {row['batched'][0]:5.2f} s WER {row['batched'][1]:5.1f} % | same words {same}/{len(items)}", flush=True)
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

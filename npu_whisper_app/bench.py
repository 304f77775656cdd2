"""``npu-whisper bench``: our encoder against openai-whisper's own, same windows, one process."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch
import whisper

from .audio.decode import SAMPLE_RATE, load_audio
from .profiling import Recorder, format_op_table, summary_dict

WINDOW_SAMPLES = 30 * SAMPLE_RATE


def synthetic_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """A deterministic speech-like signal (harmonic chirps in noise) for timing only."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    return (0.1 * env * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def mel_windows(audio: np.ndarray, n_windows: int, n_mels: int) -> list[torch.Tensor]:
    """Consecutive 30 s log-mel windows ``[n_mels, 3000]`` (the audio repeats if short)."""
    need = n_windows * WINDOW_SAMPLES
    if len(audio) < need:
        audio = np.tile(audio, int(np.ceil(need / max(len(audio), 1))))
    mels = []
    for i in range(n_windows):
        chunk = torch.from_numpy(audio[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES].copy())
        mels.append(whisper.log_mel_spectrogram(chunk, n_mels))
    return mels


def _time(fn, mel: torch.Tensor) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn(mel[None])
    return time.perf_counter() - start, out


def run_encoder_bench(
    model: str,
    device: str,
    windows: int = 3,
    repeat: int = 3,
    audio_path: str | None = None,
    threads: int = 0,
    device_options: dict | None = None,
) -> dict[str, Any]:
    """Time both encoders on each window (alternating, fastest of ``repeat`` counts)."""
    from .pipeline import Engine

    if threads > 0:
        torch.set_num_threads(threads)
    recorder = Recorder()
    engine = Engine(model, device, recorder=recorder, device_options=device_options)
    audio = load_audio(audio_path) if audio_path else synthetic_audio(30.0 * windows)
    mels = mel_windows(audio, windows, engine.n_mels)

    def ref(m: torch.Tensor) -> torch.Tensor:
        return engine.encode(m, reference=True)

    def run_ours(m: torch.Tensor) -> torch.Tensor:
        return engine.encode(m)

    rows = []
    with torch.inference_mode():
        _time(ref, mels[0])  # warm-up both
        _time(run_ours, mels[0])
        for i, mel in enumerate(mels):
            t_ref, t_ours, t_bare = [], [], []
            err = 0.0
            for _ in range(repeat):
                dt, r = _time(ref, mel)
                t_ref.append(dt)
                mark = len(recorder.events)
                dt, o = _time(run_ours, mel)
                t_ours.append(dt)
                err = max(err, float((r - o).abs().max()))
                last_events = recorder.events[mark:]
                recorder.enabled = False
                dt, _ = _time(run_ours, mel)
                recorder.enabled = True
                t_bare.append(dt)
            rows.append(
                {
                    "window": i,
                    "ours_s": min(t_ours),
                    "ours_median_s": statistics.median(t_ours),
                    "reference_s": min(t_ref),
                    "reference_median_s": statistics.median(t_ref),
                    "ratio": min(t_ref) / min(t_ours),
                    "ours_unrecorded_s": min(t_bare),
                    "max_abs_err": err,
                    "dispatches": len(last_events),
                }
            )
    # direct cost of recording: the same number of record() calls on a throwaway recorder
    probe = Recorder()
    n = max(r["dispatches"] for r in rows)
    start = time.perf_counter()
    for _ in range(n):
        probe.record("x", "cpu", 0, 1, 1, 1, None, None)
    probe.flush()
    record_s = time.perf_counter() - start
    ours_min = min(r["ours_s"] for r in rows)
    summary = {
        "model": engine.model_name,
        "device": engine.device_name,
        "device_options": dict(device_options or {}),
        "threads": torch.get_num_threads(),
        "windows": rows,
        "ours_s": statistics.median(r["ours_s"] for r in rows),
        "reference_s": statistics.median(r["reference_s"] for r in rows),
        "recording_cost": {
            "record_calls_per_window": n,
            "record_s_per_window": record_s,
            "share_of_encoder": record_s / ours_min,
            "ab_share": statistics.median((r["ours_s"] - r["ours_unrecorded_s"]) / r["ours_unrecorded_s"] for r in rows),
        },
        "per_op": summary_dict(last_events)["per_op"],
    }
    summary["ratio"] = summary["reference_s"] / summary["ours_s"]
    engine.close()
    lines = [
        f"model {summary['model']} · device {summary['device']} · {summary['threads']} threads · {windows} window(s) × {repeat} runs",
        f"{'window':>6} {'ours s':>8} {'openai s':>9} {'ratio':>6} {'max|err|':>9} {'dispatches':>10}",
    ]
    for r in rows:
        lines.append(f"{r['window']:>6} {r['ours_s']:>8.3f} {r['reference_s']:>9.3f} {r['ratio']:>6.2f} {r['max_abs_err']:>9.2e} {r['dispatches']:>10}")
    lines.append(f"median: ours {summary['ours_s']:.3f} s, openai-whisper {summary['reference_s']:.3f} s per 30 s window -> ratio {summary['ratio']:.2f} (>1: ours faster)")
    rc = summary["recording_cost"]
    lines.append(
        f"recording: {rc['record_calls_per_window']} events/window cost {1e3 * rc['record_s_per_window']:.2f} ms = {100 * rc['share_of_encoder']:.2f}% of encoder time "
        f"(A/B with recording off: {100 * rc['ab_share']:+.1f}%, within run-to-run noise)"
    )
    lines.append("")
    lines.append("per-op breakdown (last timed run of the last window):")
    lines.append(format_op_table(last_events))
    summary["text"] = "\n".join(lines)
    return summary

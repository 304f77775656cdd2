"""Live dictation latency and accuracy on eval-dev.

Builds a sequence of utterances (eval-dev clips separated by 1-2 s of quiet pink room
noise), plays it into the dictation pipeline at real-time pace as if it were the
microphone, and reports, per clip, the time from the end of its speech (found from the
clip's own energy envelope, so independent of our VAD) to the final text; the interval
between partial updates; WER against the references (jiwer, Whisper's
EnglishTextNormalizer), also for each clip transcribed alone with ``Engine.transcribe``;
and CPU load (process CPU time / wall time).

    python benchmarks/live_latency.py [EVAL_DEV] --model base --audio-ctx fit full [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from npu_whisper_app.audio.decode import load_audio  # noqa: E402

SR = 16000
DEFAULT_CLIPS = ["cards/001", "cards/002", "cards/003", "cards/004", "cards/005", "goforward", "forever", "tidigits", "jfk"]


def speech_end(clip: np.ndarray) -> int:
    """One past the last 10 ms frame louder than 5 % of the clip's loudest frame's RMS."""
    hop = 160
    n = len(clip) // hop
    rms = np.sqrt(np.mean(clip[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    loud = np.nonzero(rms > 0.05 * rms.max())[0]
    return int((loud[-1] + 1) * hop) if loud.size else len(clip)


def room_noise(n: int, rng: np.random.Generator, level: float = 0.003) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12) * level).astype(np.float32)


def build_sequence(eval_dev: Path, ids: list[str], seed: int = 0):
    rows = {r["id"]: r for r in map(json.loads, (eval_dev / "manifest.jsonl").read_text().splitlines())}
    rng = np.random.default_rng(seed)
    parts, clips, t = [], [], 0
    for cid in ids:
        gap = room_noise(int(rng.uniform(1.0, 2.0) * SR), rng)
        audio = load_audio(eval_dev / rows[cid]["path"])
        parts += [gap, audio]
        t += len(gap)
        clips.append({"id": cid, "ref": rows[cid]["ref"], "start": t, "end": t + len(audio), "speech_end": t + speech_end(audio), "path": str(eval_dev / rows[cid]["path"])})
        t += len(audio)
    parts.append(room_noise(2 * SR, rng))
    return np.concatenate(parts), clips


def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


def run_config(engine, audio, clips, audio_ctx: str, prompt_previous: bool | None, speed: float, final: str = "transcribe", pad_ms: int | None = None) -> dict:
    from npu_whisper_app.live.decoder import DecoderOptions, WhisperUtteranceDecoder
    from npu_whisper_app.live.dictation import DictationOptions, DictationSession, Final, Partial
    from npu_whisper_app.live.segmenter import SegmenterOptions
    from npu_whisper_app.live.sources import FilePlayer

    if prompt_previous is None:
        prompt_previous = final == "window"
    events: list[tuple[float, object]] = []
    decoder = WhisperUtteranceDecoder(engine, DecoderOptions(language="en", audio_ctx=audio_ctx, final=final))
    decoder.decode(audio[clips[0]["start"] : clips[0]["end"]])  # warm-up
    opts = DictationOptions(prompt_previous=prompt_previous, segmenter=SegmenterOptions(pad_ms=pad_ms), wav_path=Path(os.environ.get("TMPDIR", "/tmp")) / f"live-bench-{os.getpid()}.wav", transcript=False)
    session = DictationSession(decoder, FilePlayer(audio, speed=speed), opts, on_event=lambda ev: events.append((time.monotonic(), ev)))
    pad_ms = session.segmenter.options.pad_ms
    cpu0, wall0 = time.process_time(), time.monotonic()
    session.start()
    session.wait()
    result = session.stop()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    finals = [ev for _, ev in events if isinstance(ev, Final)]
    # assign each final to the clip it overlaps most
    per_clip: dict[int, list] = {i: [] for i in range(len(clips))}
    stray = []
    for f in finals:
        s, e = int(f.start_s * SR), int(f.end_s * SR)
        overlaps = [max(0, min(e, c["end"]) - max(s, c["start"])) for c in clips]
        best = int(np.argmax(overlaps))
        (per_clip[best] if overlaps[best] > 0 else stray).append(f)
    latencies, rows = [], []
    for i, c in enumerate(clips):
        kept = [f for f in per_clip[i] if f.text]
        hyp = " ".join(f.text for f in kept)
        lat = None
        if kept:
            arrived = session.arrival_time(c["speech_end"])
            lat = kept[-1].decided_at - arrived
            latencies.append(lat)
        rows.append({"id": c["id"], "ref": c["ref"], "hyp": hyp, "latency_s": lat, "finals": len(per_clip[i])})
    intervals = []
    last: dict[int, float] = {}
    for t, ev in events:
        if isinstance(ev, Partial):
            if ev.index in last:
                intervals.append(t - last[ev.index])
            last[ev.index] = t
    decode_s = [f.decode_s for f in finals]
    return {
        "audio_ctx": audio_ctx,
        "final": final,
        "prompt_previous": prompt_previous,
        "pad_ms": pad_ms,
        "speed": speed,
        "latency_p50_s": pct(latencies, 50),
        "latency_p95_s": pct(latencies, 95),
        "latency_max_s": max(latencies) if latencies else float("nan"),
        "partial_interval_p50_s": pct(intervals, 50),
        "partial_interval_p95_s": pct(intervals, 95),
        "partials": len(intervals) + len(last),
        "final_decode_p50_s": pct(decode_s, 50),
        "final_decode_p95_s": pct(decode_s, 95),
        "wer": wer([r["ref"] for r in rows], [r["hyp"] for r in rows]),
        "stray_text": [f.text for f in stray if f.text],
        "cpu_load": cpu / wall,
        "speculative_started": session.speculative_started,
        "speculative_used": session.speculative_used,
        "machine_load_average_1min": os.getloadavg()[0],
        "audio_s": result.audio_s,
        "wall_s": wall,
        "clips": rows,
    }


def decode_cost(engine, audio, clips, audio_ctx: str, final: str = "transcribe") -> dict:
    """CPU time (less sensitive to other processes than wall time) of one final decode per clip."""
    from npu_whisper_app.live.decoder import DecoderOptions, WhisperUtteranceDecoder

    import threading

    dec = WhisperUtteranceDecoder(engine, DecoderOptions(language="en", audio_ctx=audio_ctx, final=final))
    cpu, wall = [], []

    def run() -> None:  # on a thread of its own, like the session's decoder
        for c in clips:
            a = audio[max(0, c["start"] - 3200) : c["speech_end"] + 3200]
            c0, w0 = time.process_time(), time.perf_counter()
            dec.decode(a)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return {"decode_cpu_p50_s": pct(cpu, 50), "decode_wall_p50_s": pct(wall, 50)}


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    n = EnglishTextNormalizer()
    r = [n(x) for x in refs]
    h = [n(x) for x in hyps]
    return float(jiwer.wer(r, h))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("eval_dev", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared" / "eval-dev"))
    p.add_argument("--model", default="base")
    p.add_argument("--device", default="cpu")
    p.add_argument("--audio-ctx", nargs="+", default=["fit"], choices=["fit", "full"], help="the partials' window (and the final's with --final window)")
    p.add_argument("--final", nargs="+", default=["transcribe", "window"], choices=["transcribe", "window"], help="final decode: as a file is transcribed, or on the partials' window")
    p.add_argument("--prompt-previous", action=argparse.BooleanOptionalAction, default=None,
                   help="give the previous text as the prompt (default: as the app does: off with the transcribe final, on with the window final)")
    p.add_argument("--pad-ms", type=int, default=None, help="audio kept after the last speech frame, waited for (default: the segmenter's)")
    p.add_argument("--speed", type=float, default=1.0, help="times real time (default: %(default)s)")
    p.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    p.add_argument("--json", default=None, help="write the full report here")
    args = p.parse_args(argv)

    from npu_whisper_app.pipeline import Engine, TranscribeOptions

    eval_dev = Path(args.eval_dev)
    audio, clips = build_sequence(eval_dev, args.clips)
    engine = Engine(args.model, args.device)
    print(f"{len(clips)} utterances, {len(audio) / SR:.1f} s at {args.speed}x real time; model {engine.model_name} on {engine.device_name}; "
          f"{os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}", flush=True)
    alone = [engine.transcribe(c["path"], TranscribeOptions(language="en")).text for c in clips]
    report = {"model": engine.model_name, "device": engine.device_name, "cores": os.cpu_count(), "alone_wer": wer([c["ref"] for c in clips], alone), "configs": []}
    print(f"each clip transcribed alone (Engine.transcribe, 30 s window): WER {report['alone_wer']:.3f}")
    for ctx, final in [(c, f) for c in args.audio_ctx for f in args.final]:
        cost = decode_cost(engine, audio, clips, ctx, final)
        r = run_config(engine, audio, clips, ctx, args.prompt_previous, args.speed, final, args.pad_ms)
        r.update(cost)
        report["configs"].append(r)
        print(
            f"audio-ctx {ctx:4} final {final:10} prompt {'on ' if r['prompt_previous'] else 'off'} pad {r['pad_ms']} ms: end of speech -> final p50 {r['latency_p50_s']:.2f} s, p95 {r['latency_p95_s']:.2f} s (max {r['latency_max_s']:.2f}); "
            f"final decode p50 {r['final_decode_p50_s']:.2f} s; partial interval p50 {r['partial_interval_p50_s']:.2f} s, p95 {r['partial_interval_p95_s']:.2f} s; "
            f"WER {r['wer']:.3f}; CPU load {r['cpu_load']:.2f} cores; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        print(f"    speculative finals: {r['speculative_started']} started, {r['speculative_used']} used (the others: a pause that did not last)")
        print(f"    offline, one utterance at a time: decode CPU time p50 {r['decode_cpu_p50_s']:.2f} s (wall p50 {r['decode_wall_p50_s']:.2f} s); "
              "on an otherwise idle machine the final comes about pad + the VAD's hang-over (0-0.15 s) + decode wall after the speech, and never before the silence")
        from whisper.normalizers import EnglishTextNormalizer

        norm = EnglishTextNormalizer()
        same = [norm(row["hyp"]).split() == norm(text).split() for row, text in zip(r["clips"], alone)]
        r["same_words_as_alone"] = sum(same)
        print(f"    same words as the clip transcribed alone (normalised): {sum(same)} of {len(same)}")
        for row, text, ok in zip(r["clips"], alone, same):
            lat = f"{row['latency_s']:.2f}" if row["latency_s"] is not None else "  - "
            print(f"    {row['id']:<10} {lat:>5} s  {row['hyp']!r}" + ("" if ok else f"   alone: {text.strip()!r}"))
        if r["stray_text"]:
            print(f"    text outside the utterances: {r['stray_text']!r}")
    engine.close()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

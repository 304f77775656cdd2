"""Live dictation latency and accuracy on eval-dev.

Builds a sequence of utterances (eval-dev clips separated by 1-2 s of quiet pink room
noise), plays it into the dictation pipeline at real-time pace as if it were the
microphone, and reports, per clip, the time from the end of its speech (found from the
clip's own energy envelope, so independent of our VAD) to the final text; the interval
between partial updates; WER against the references (jiwer, Whisper's
EnglishTextNormalizer), also for each clip transcribed alone with ``Engine.transcribe``;
and CPU load (process CPU time / wall time).

With ``--deliver`` (needs an X display, e.g. under ``xvfb-run``) each final also goes
through the dictation service's text sink (clipboard + Ctrl+V via XTest) into a second X
client's text field (tests/x11_target.py, another process), and the report adds end of
speech -> text in that field (p50/p95) and where the time goes per utterance: the VAD's
hang-over (its last speech frame after the clip's energy end), the wait for the pause
(--silence-ms) and the trailing pad, the final decode, and the paste (sink queue +
clipboard + key, then until the field shows it).

    python benchmarks/live_latency.py [EVAL_DEV] --model base --audio-ctx fit full [--json out.json]
    xvfb-run -a python benchmarks/live_latency.py --final transcribe --deliver
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


class FieldWatch:
    """The other application's text field: when (monotonic) did it change, to what."""

    def __init__(self) -> None:
        import subprocess
        import tempfile
        import threading

        self.dir = Path(tempfile.mkdtemp(prefix="live-bench-field-"))
        self.out = self.dir / "field.txt"
        self.changes: list[tuple[float, str]] = []
        target = Path(__file__).resolve().parents[1] / "tests" / "x11_target.py"
        self.proc = subprocess.Popen([sys.executable, str(target), str(self.out)], stdout=subprocess.PIPE, text=True)
        for line in self.proc.stdout:
            if line.strip() == "ready":
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        last = None
        while not self._stop.is_set():
            try:
                text = self.out.read_text(encoding="utf-8")
            except OSError:
                text = last
            if text != last:
                self.changes.append((time.monotonic(), text or ""))
                last = text
            time.sleep(0.002)

    def shown_at(self, length: int, after: float) -> float | None:
        """First time after ``after`` the field held at least ``length`` characters."""
        for t, text in self.changes:
            if t >= after and len(text) >= length:
                return t
        return None

    def close(self) -> None:
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(5)


def run_config(engine, audio, clips, audio_ctx: str, prompt_previous: bool | None, speed: float, final: str = "transcribe", pad_ms: int | None = None,
               deliver: bool = False, silence_ms: int | None = None, partials: bool = True) -> dict:
    from npu_whisper_app.live.decoder import DecoderOptions, WhisperUtteranceDecoder
    from npu_whisper_app.live.dictation import DictationOptions, DictationSession, Final, Partial
    from npu_whisper_app.live.segmenter import SegmenterOptions
    from npu_whisper_app.live.sources import FilePlayer

    if prompt_previous is None:
        prompt_previous = final == "window"
    events: list[tuple[float, object]] = []
    decoder = WhisperUtteranceDecoder(engine, DecoderOptions(language="en", audio_ctx=audio_ctx, final=final))
    decoder.decode(audio[clips[0]["start"] : clips[0]["end"]])  # warm-up
    seg = SegmenterOptions(pad_ms=pad_ms) if silence_ms is None else SegmenterOptions(pad_ms=pad_ms, min_silence_ms=silence_ms)
    opts = DictationOptions(prompt_previous=prompt_previous, partials=partials, segmenter=seg, wav_path=Path(os.environ.get("TMPDIR", "/tmp")) / f"live-bench-{os.getpid()}.wav", transcript=False)
    field = sink = None
    if deliver:
        from npu_whisper_app.desktop.delivery import TextDelivery
        from npu_whisper_app.desktop.sink import DeliverySink

        field = FieldWatch()
        sink = DeliverySink(TextDelivery.for_desktop(on_notice=lambda m: print(f"note: {m}", flush=True)))

    def on_event(ev: object) -> None:
        events.append((time.monotonic(), ev))
        if sink is not None:
            sink.on_event(ev)

    session = DictationSession(decoder, FilePlayer(audio, speed=speed), opts, on_event=on_event)
    pad_ms = session.segmenter.options.pad_ms
    cpu0, wall0 = time.process_time(), time.monotonic()
    session.start()
    session.wait()
    result = session.stop()
    if sink is not None:
        sink.wait_idle(30)
        time.sleep(0.3)  # the field's last change
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
    latencies, rows, shown_lat = [], [], []
    delivered = {d.index: d for d in sink.delivered} if sink is not None else {}
    lengths, total = {}, 0
    for d in (sink.delivered if sink is not None else []):
        total += len(d.text)
        lengths[d.index] = total
    for i, c in enumerate(clips):
        kept = [f for f in per_clip[i] if f.text]
        hyp = " ".join(f.text for f in kept)
        lat = None
        row = {"id": c["id"], "ref": c["ref"], "hyp": hyp, "latency_s": None, "finals": len(per_clip[i])}
        if kept:
            arrived = session.arrival_time(c["speech_end"])
            last = kept[-1]
            lat = last.decided_at - arrived
            latencies.append(lat)
            # where the time goes (seconds after the clip's energy end)
            row["vad_hangover_s"] = (last.speech_end_sample - c["speech_end"]) / SR
            row["decode_s"] = last.decode_s
            d = delivered.get(last.index)
            if d is not None and field is not None:
                shown = field.shown_at(lengths[last.index], d.decided_at)
                row["paste_call_s"] = d.delivered_at - d.decided_at  # queue + clipboard + key
                if shown is not None:
                    row["shown_after_key_s"] = shown - d.delivered_at
                    row["shown_latency_s"] = shown - arrived
                    shown_lat.append(shown - arrived)
        row["latency_s"] = lat
        rows.append(row)
    if field is not None:
        if os.environ.get("LIVE_BENCH_DEBUG"):
            print("field changes:", [(round(t - wall0, 3), x) for t, x in field.changes], [(d.index, d.text, d.result.how, round(d.decided_at - wall0, 3)) for d in sink.delivered])
        field.close()
        sink.close()
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
        "silence_ms": session.segmenter.options.min_silence_ms,
        "partials_on": partials,
        "shown_latency_p50_s": pct(shown_lat, 50) if deliver else None,
        "shown_latency_p95_s": pct(shown_lat, 95) if deliver else None,
        "shown_count": len(shown_lat),
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
    import threading

    from npu_whisper_app.live.decoder import DecoderOptions, WhisperUtteranceDecoder

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
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"], help="the cpu device's precision (default: %(default)s)")
    p.add_argument("--audio-ctx", nargs="+", default=["fit"], choices=["fit", "full"], help="the partials' window (and the final's with --final window)")
    p.add_argument("--final", nargs="+", default=["transcribe", "window"], choices=["transcribe", "window"], help="final decode: as a file is transcribed, or on the partials' window")
    p.add_argument("--prompt-previous", action=argparse.BooleanOptionalAction, default=None,
                   help="give the previous text as the prompt (default: as the app does: off with the transcribe final, on with the window final)")
    p.add_argument("--pad-ms", type=int, default=None, help="audio kept after the last speech frame, waited for (default: the segmenter's)")
    p.add_argument("--speed", type=float, default=1.0, help="times real time (default: %(default)s)")
    p.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    p.add_argument("--json", default=None, help="write the full report here")
    p.add_argument("--deliver", action="store_true", help="also paste each final into a second X client and time it (needs DISPLAY)")
    p.add_argument("--silence-ms", type=int, default=None, help="pause that ends an utterance (default: the app's, 500)")
    p.add_argument("--partials", action=argparse.BooleanOptionalAction, default=True, help="decode partials while speech goes on (the dictation service shows none: --no-partials)")
    args = p.parse_args(argv)

    from npu_whisper_app.bench_e2e import cpu_summary
    from npu_whisper_app.pipeline import Engine, TranscribeOptions

    eval_dev = Path(args.eval_dev)
    audio, clips = build_sequence(eval_dev, args.clips)
    engine = Engine(args.model, args.device, device_options={"precision": args.precision} if args.device == "cpu" else None)
    cpu = cpu_summary()
    print(f"CPU: {cpu['model']} · flags {' '.join(cpu['flags'])} · precision {args.precision}"
          f"{' -> ' + cpu['precision_auto'] if args.precision == 'auto' else ''}", flush=True)
    print(f"{len(clips)} utterances, {len(audio) / SR:.1f} s at {args.speed}x real time; model {engine.model_name} on {engine.device_name}; "
          f"{os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}", flush=True)
    alone = [engine.transcribe(c["path"], TranscribeOptions(language="en")).text for c in clips]
    report = {"model": engine.model_name, "device": engine.device_name, "cpu": cpu, "precision": args.precision, "cores": os.cpu_count(), "alone_wer": wer([c["ref"] for c in clips], alone), "configs": []}
    print(f"each clip transcribed alone (Engine.transcribe, 30 s window): WER {report['alone_wer']:.3f}")
    for ctx, final in [(c, f) for c in args.audio_ctx for f in args.final]:
        cost = decode_cost(engine, audio, clips, ctx, final)
        r = run_config(engine, audio, clips, ctx, args.prompt_previous, args.speed, final, args.pad_ms, args.deliver, args.silence_ms, args.partials)
        r.update(cost)
        report["configs"].append(r)
        print(
            f"audio-ctx {ctx:4} final {final:10} prompt {'on ' if r['prompt_previous'] else 'off'} pad {r['pad_ms']} ms: end of speech -> final p50 {r['latency_p50_s']:.2f} s, p95 {r['latency_p95_s']:.2f} s (max {r['latency_max_s']:.2f}); "
            f"final decode p50 {r['final_decode_p50_s']:.2f} s; partial interval p50 {r['partial_interval_p50_s']:.2f} s, p95 {r['partial_interval_p95_s']:.2f} s; "
            f"WER {r['wer']:.3f}; CPU load {r['cpu_load']:.2f} cores; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        print(f"    speculative finals: {r['speculative_started']} started, {r['speculative_used']} used (the others: a pause that did not last)")
        if args.deliver:
            partials_on = args.partials
            part = lambda k, r=r: pct([row[k] for row in r["clips"] if k in row], 50)  # noqa: E731
            print(f"    partials {'on' if partials_on else 'off'}; end of speech -> text in the other application's field: p50 {r['shown_latency_p50_s']:.2f} s, p95 {r['shown_latency_p95_s']:.2f} s ({r['shown_count']} of {len(clips)} seen); "
                  f"silence {r['silence_ms']} ms, pad {r['pad_ms']} ms")
            print(f"    where it goes (p50): VAD hang-over {part('vad_hangover_s'):.3f} s, final decode {part('decode_s'):.3f} s, "
                  f"paste call {part('paste_call_s'):.3f} s, key -> field {part('shown_after_key_s'):.3f} s")
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

"""``npu-whisper bench --e2e``: whole transcriptions, ours against the peers, in one run.

Every file is decoded once (our ``load_audio``); each runner gets the same arrays and
the same decoding options. Runs alternate (ours, openai, faster-whisper, ours, ...) so
that load from other processes hits them alike; ``repeat`` rounds give min and median.
Two sets: the short clips one by one, and one long recording made by concatenating
them with short pauses; ``longform=True`` adds multi-minute recordings assembled from
them with espeak-ng speech and pauses between (``longform/testset.py``). WER uses
openai-whisper's ``EnglishTextNormalizer`` on both sides (items without a reference
only count for time).

``isolate=True`` runs each system in its own process, one process per round (rounds
still alternate the systems), and reports each one's peak resident memory
(``ru_maxrss``: model, runtime and the work, from the process's start).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .audio.decode import SAMPLE_RATE, AudioError, load_audio
from .peers import DecodeSettings, PeerUnavailable, make_peer

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".mp4", ".webm", ".aac"}
DEFAULT_MANIFEST = Path(__file__).resolve().parents[1].parent / "shared" / "eval-dev" / "manifest.jsonl"
PAUSE_S = 0.5


@dataclass
class Item:
    id: str
    audio: np.ndarray
    ref: str | None

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def load_items(manifest: str | Path | None = None, folder: str | Path | None = None, limit: int = 0) -> list[Item]:
    items: list[Item] = []
    if folder is not None:
        for p in sorted(Path(folder).iterdir()):
            if p.suffix.lower() in AUDIO_SUFFIXES:
                try:
                    items.append(Item(p.name, load_audio(p), None))
                except AudioError:
                    continue
    else:
        path = Path(manifest) if manifest is not None else DEFAULT_MANIFEST
        root = path.parent
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                items.append(Item(row["id"], load_audio(root / row["path"]), row.get("ref")))
            except AudioError:
                continue
    return items[:limit] if limit > 0 else items


def long_recording(items: list[Item], pause_s: float = PAUSE_S) -> Item:
    pause = np.zeros(int(pause_s * SAMPLE_RATE), np.float32)
    parts: list[np.ndarray] = []
    for it in items:
        parts += [it.audio, pause]
    refs = [it.ref for it in items]
    ref = " ".join(refs) if refs and all(r for r in refs) else None  # type: ignore[arg-type]
    return Item("long", np.concatenate(parts[:-1]) if parts else np.zeros(0, np.float32), ref)


_normalizer = None


def normalize(text: str) -> str:
    global _normalizer
    if _normalizer is None:
        from whisper.normalizers import EnglishTextNormalizer

        _normalizer = EnglishTextNormalizer()
    return " ".join(_normalizer(text).split())


def wer(refs: list[str], hyps: list[str]) -> float | None:
    """Corpus WER (%) of ``hyps`` against ``refs``, both normalized; None when no refs."""
    import jiwer

    pairs = [(normalize(r), normalize(h)) for r, h in zip(refs, hyps)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return None
    errors = words = 0
    for r, h in pairs:
        n = len(r.split())
        if h:
            errors += round(jiwer.wer(r, h) * n)
        else:
            errors += n
        words += n
    return 100.0 * errors / words


#: our pipeline's variants that ``--also`` adds as runners beside "ours": engine options
VARIANTS: dict[str, dict[str, Any]] = {
    "short-window": {"short_window": True},
    "int8-decoder": {"decoder_quant": "int8"},
}


class OursBatchedRunner:
    """Our batched long-form mode (``longform.transcribe_batched``): VAD chunks at pauses,
    ``batch_size`` chunks decoded together."""

    name = "ours-batched"

    def __init__(self, model: str, device: str = "cpu", device_options: dict | None = None, batch_size: int = 8) -> None:
        from .pipeline import Engine

        self.engine = Engine(model, device, device_options=device_options)
        self.batch_size = batch_size
        self.description = f"npu-whisper's default mode, batched (VAD chunks, batch {batch_size}), on {self.engine.device_name} " + (json.dumps(device_options, sort_keys=True) if device_options else "(defaults)")

    def transcribe(self, audio: np.ndarray, settings: DecodeSettings) -> str:
        from .pipeline import TranscribeOptions

        opts = TranscribeOptions(
            language=settings.language, temperature=settings.temperatures, beam_size=settings.beam_size, batched=True, batch_size=self.batch_size
        )
        self.engine.recorder.clear()
        self.engine.forget_cached_window()
        return self.engine.transcribe(audio, opts).text

    def close(self) -> None:
        self.engine.close()


def cpu_summary() -> dict[str, Any]:
    """The CPU model and the flags that decide the numerics (printed by every bench)."""
    from .devices.cpu import choose_precision
    from .devices.cpuinfo import cpu_info

    info = cpu_info()
    model = info.model_name or platform.processor() or platform.machine()
    flags = info.flags
    relevant = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni") if f in flags]
    precision, reason = choose_precision(flags)
    from .devices.cpu_native import batched_decoder_summary

    return {
        "model": model, "cores": os.cpu_count(), "flags": relevant, "avx512_bf16": "avx512_bf16" in flags, "precision_auto": precision,
        "precision_reason": reason, "batched_decoder": batched_decoder_summary(),
    }


def make_runner(name: str, model: str, device: str = "cpu", device_options: dict | None = None, engine_options: dict | None = None) -> Any:
    """Any system by name: ours, ours-batched, ours+VARIANT, or a peer."""
    if name == "ours":
        return OursRunner(model, device, device_options, engine_options)
    if name == "ours-batched":
        return OursBatchedRunner(model, device, device_options)
    if name.startswith("ours+"):
        variant = name[5:]
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
        return OursRunner(model, device, device_options, {**(engine_options or {}), **VARIANTS[variant]})
    return make_peer(name, model)


class OursRunner:
    """Our pipeline (the Engine) on the cpu device with the given options."""

    name = "ours"

    def __init__(self, model: str, device: str = "cpu", device_options: dict | None = None, engine_options: dict | None = None) -> None:
        from .pipeline import Engine

        self.engine = Engine(model, device, device_options=device_options, **(engine_options or {}))
        opts = dict(device_options or {})
        opts.update(engine_options or {})
        self.description = f"npu-whisper, openai-whisper's loop (--batched False), on {self.engine.device_name} " + (
            json.dumps(opts, sort_keys=True) if opts else "(defaults)"
        )

    def transcribe(self, audio: np.ndarray, settings: DecodeSettings) -> str:
        from .pipeline import TranscribeOptions

        opts = TranscribeOptions(
            language=settings.language,
            temperature=settings.temperatures,
            beam_size=settings.beam_size,
            condition_on_previous_text=settings.condition_on_previous_text,
            batched=False,  # openai-whisper's sequential loop (--batched False); ours-batched is the default mode
        )
        self.engine.recorder.clear()  # keep memory flat over many runs
        self.engine.forget_cached_window()  # repeated rounds must not reuse the last window's encoding
        return self.engine.transcribe(audio, opts).text

    def close(self) -> None:
        self.engine.close()


def _stats(times: list[float], audio_s: float) -> dict[str, Any]:
    t_min, t_med = min(times), statistics.median(times)
    return {
        "elapsed_s": times,
        "min_s": t_min,
        "median_s": t_med,
        "rtf": audio_s / t_min,  # seconds of audio per second of compute, best run
        "rtf_median": audio_s / t_med,
    }


def build_sets(
    manifest: str | Path | None = None,
    folder: str | Path | None = None,
    limit: int = 0,
    short: bool = True,
    long: bool = True,
    longform: bool = False,
    longform_minutes: tuple[float, ...] = (3.0, 5.0),
) -> dict[str, list[Item]]:
    """The benchmark's sets of items (deterministic: a worker process rebuilds the same)."""
    items = load_items(manifest, folder, limit)
    if not items:
        raise ValueError("no audio items to benchmark")
    sets: dict[str, list[Item]] = {}
    if short:
        sets["short"] = items
    if long:
        sets["long"] = [long_recording(items)]
    if longform:
        from .longform.testset import build_longform_set

        lf_manifest = build_longform_set(Path(manifest) if manifest is not None else DEFAULT_MANIFEST, minutes=tuple(longform_minutes))
        sets["longform"] = load_items(lf_manifest)
    return sets


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One system, one round, in this (fresh) process: load, warm up on the shortest item,
    transcribe every set; per-item times, texts and this process's peak RSS."""
    import torch

    if spec.get("threads", 0) > 0:
        torch.set_num_threads(spec["threads"])
    sets = build_sets(**spec["sets"])
    settings = DecodeSettings(**spec["settings"])
    out: dict[str, Any] = {"runner": spec["runner"]}
    try:
        t0 = time.perf_counter()
        runner = make_runner(spec["runner"], spec["model"], spec.get("device", "cpu"), spec.get("device_options"), spec.get("engine_options"))
        out["load_s"] = time.perf_counter() - t0
    except PeerUnavailable as exc:
        return {"runner": spec["runner"], "unavailable": str(exc)}
    out["description"] = runner.description
    warm = min((it for items in sets.values() for it in items), key=lambda it: it.seconds)
    runner.transcribe(warm.audio, settings)
    out["sets"] = {}
    for set_name, items in sets.items():
        times, texts = [], []
        for it in items:
            start = time.perf_counter()
            texts.append(runner.transcribe(it.audio, settings))
            times.append(time.perf_counter() - start)
        out["sets"][set_name] = {"times": times, "texts": texts}
    runner.close()
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


WORKER_MARK = "@@bench-worker@@ "


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "npu_whisper_app.bench_e2e", "--worker", json.dumps(spec)],
        capture_output=True, text=True,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(WORKER_MARK):
            return json.loads(line[len(WORKER_MARK) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"runner": spec["runner"], "unavailable": f"worker failed (exit {proc.returncode}): {' | '.join(tail)}"}


def run_e2e_bench(
    model: str = "base",
    *,
    manifest: str | Path | None = None,
    folder: str | Path | None = None,
    peers: tuple[str, ...] = ("openai", "faster-whisper"),
    repeat: int = 3,
    long: bool = True,
    short: bool = True,
    settings: DecodeSettings | None = None,
    device: str = "cpu",
    device_options: dict | None = None,
    engine_options: dict | None = None,
    limit: int = 0,
    threads: int = 0,
    also: tuple[str, ...] = (),
    batched: bool = False,
    longform: bool = False,
    longform_minutes: tuple[float, ...] = (3.0, 5.0),
    isolate: bool = False,
) -> dict[str, Any]:
    """``batched`` adds our batched long-form mode as the runner ``ours-batched``;
    ``longform`` the long-form set; ``isolate`` one process per system and round, with
    peak memory (see the module doc)."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    settings = settings or DecodeSettings()
    for variant in also:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    set_args = dict(manifest=str(manifest) if manifest is not None else None, folder=str(folder) if folder is not None else None,
                    limit=limit, short=short, long=long, longform=longform, longform_minutes=list(longform_minutes))
    sets = build_sets(**set_args)  # type: ignore[arg-type]
    names = ["ours", *(f"ours+{v}" for v in also), *(["ours-batched"] if batched else []), *peers]

    times: dict[str, dict[str, list[float]]] = {s: {n: [] for n in names} for s in sets}
    texts: dict[str, dict[str, list[str]]] = {s: {n: [] for n in names} for s in sets}
    peer_info: dict[str, dict[str, Any]] = {}
    peak: dict[str, float] = {}
    if isolate:
        spec_base = dict(model=model, device=device, device_options=device_options, engine_options=engine_options,
                         threads=torch.get_num_threads(), sets=set_args, settings=dict(language=settings.language, temperatures=list(settings.temperatures), beam_size=settings.beam_size, condition_on_previous_text=settings.condition_on_previous_text))
        live = list(names)
        for rnd in range(repeat):
            for n in list(live if rnd % 2 == 0 else reversed(live)):
                res = _run_worker({**spec_base, "runner": n})
                if "unavailable" in res:
                    peer_info[n] = {"available": False, "reason": res["unavailable"]}
                    live.remove(n)
                    continue
                peer_info[n] = {"available": True, "description": res["description"]}
                peak[n] = max(peak.get(n, 0.0), res["maxrss_mb"])
                for set_name, r in res["sets"].items():
                    times[set_name][n].append(sum(r["times"]))
                    if rnd == 0:
                        texts[set_name][n] = r["texts"]
        runner_names = live
    else:
        runners: dict[str, Any] = {}
        for n in names:
            try:
                runners[n] = make_runner(n, model, device, device_options, engine_options)
                peer_info[n] = {"available": True, "description": runners[n].description}
            except PeerUnavailable as exc:
                peer_info[n] = {"available": False, "reason": str(exc)}
        # warm-up: one short transcription each (lazy init, allocator, caches)
        warm = min((it for items in sets.values() for it in items), key=lambda it: it.seconds)
        for r in runners.values():
            r.transcribe(warm.audio, settings)
        for rnd in range(repeat):
            for set_name, set_items in sets.items():
                totals = {n: 0.0 for n in runners}
                for it in set_items:
                    order = list(runners) if rnd % 2 == 0 else list(reversed(runners))
                    for n in order:
                        start = time.perf_counter()
                        text = runners[n].transcribe(it.audio, settings)
                        totals[n] += time.perf_counter() - start
                        if rnd == 0:
                            texts[set_name][n].append(text)
                for n in runners:
                    times[set_name][n].append(totals[n])
        for r in runners.values():
            r.close()
        runner_names = list(runners)

    report: dict[str, Any] = {
        "model": model,
        "threads": torch.get_num_threads(),
        "repeat": repeat,
        "cpu": cpu_summary(),
        "isolated": isolate,
        "settings": {"language": settings.language, "temperatures": list(settings.temperatures), "beam_size": settings.beam_size, "condition_on_previous_text": settings.condition_on_previous_text},
        "load_average": list(os.getloadavg()),
        "runners": {n: {**peer_info[n], **({"peak_rss_mb": peak[n]} if n in peak else {})} for n in names},
        "sets": {},
    }
    for set_name, set_items in sets.items():
        audio_s = sum(it.seconds for it in set_items)
        refs = [it.ref or "" for it in set_items]
        entry: dict[str, Any] = {"files": len(set_items), "audio_s": audio_s, "ids": [it.id for it in set_items], "runners": {}}
        for n in runner_names:
            row = _stats(times[set_name][n], audio_s)
            row["wer"] = wer(refs, texts[set_name][n])
            if "openai" in runner_names and n != "openai":
                row["wer_vs_openai"] = wer(texts[set_name]["openai"], texts[set_name][n])
                row["same_text_as_openai"] = sum(normalize(a) == normalize(b) for a, b in zip(texts[set_name]["openai"], texts[set_name][n]))
            if n in peak:
                row["peak_rss_mb"] = peak[n]
            row["texts"] = texts[set_name][n]
            entry["runners"][n] = row
        ours_names = [n for n in runner_names if n.startswith("ours")]
        # speed-up of each of our variants against each peer (peer time / our time)
        entry["speedups"] = {
            o: {
                n: {"min": entry["runners"][n]["min_s"] / entry["runners"][o]["min_s"], "median": entry["runners"][n]["median_s"] / entry["runners"][o]["median_s"]}
                for n in runner_names
                if n not in ours_names
            }
            for o in ours_names
        }
        entry["ours_speedup"] = entry["speedups"].get("ours", {})
        report["sets"][set_name] = entry
    report["text"] = format_report(report)
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"end to end · model {report['model']} · {report['threads']} threads · {report['repeat']} round(s) · load {report['load_average'][0]:.1f} · settings {json.dumps(report['settings'])}"]
    cpu = report.get("cpu")
    if cpu:
        lines.append(f"CPU: {cpu['model']} · {cpu['cores']} logical cores · flags {' '.join(cpu['flags']) or '-'} · avx512_bf16 {'yes' if cpu['avx512_bf16'] else 'no'} · precision auto -> {cpu['precision_auto']} ({cpu['precision_reason']})")
        if cpu.get("batched_decoder"):
            lines.append(f"batched mode's decoder: {cpu['batched_decoder']}")
    if report.get("isolated"):
        lines.append("each system ran in its own process per round; peak RSS = that process's ru_maxrss")
    for name, info in report["runners"].items():
        rss = f" · peak RSS {info['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in info else ""
        lines.append(f"  {name:<22} " + (info["description"] + rss if info["available"] else f"skipped: {info['reason']}"))
    for set_name, entry in report["sets"].items():
        lines.append("")
        lines.append(f"[{set_name}] {entry['files']} file(s), {entry['audio_s']:.1f} s of audio")
        lines.append(f"  {'runner':<22} {'min s':>7} {'median s':>9} {'RTF best':>9} {'RTF med':>8} {'WER %':>6} {'vs openai':>9} {'peak MB':>8}")
        for n, row in entry["runners"].items():
            w = "-" if row["wer"] is None else f"{row['wer']:.1f}"
            vs = row.get("wer_vs_openai")
            vs_s = "-" if vs is None else f"{vs:.1f}"
            rss = f"{row['peak_rss_mb']:.0f}" if "peak_rss_mb" in row else "-"
            lines.append(f"  {n:<22} {row['min_s']:>7.2f} {row['median_s']:>9.2f} {row['rtf']:>9.1f} {row['rtf_median']:>8.1f} {w:>6} {vs_s:>9} {rss:>8}")
        for o, peers_x in entry.get("speedups", {"ours": entry["ours_speedup"]}).items():
            if peers_x:
                lines.append(f"  {o} x: " + ", ".join(f"{n} {x['min']:.2f} (med {x['median']:.2f})" for n, x in peers_x.items()))
    lines.append("")
    lines.append("RTF = seconds of audio per second of compute; 'x' = peer time / our time (>1: ours faster)")
    return "\n".join(lines)


def _main(argv: list[str]) -> int:
    """``python -m npu_whisper_app.bench_e2e --worker SPEC``: one isolated run (internal)."""
    if len(argv) == 2 and argv[0] == "--worker":
        res = _worker(json.loads(argv[1]))
        print(WORKER_MARK + json.dumps(res), flush=True)
        return 0
    print("usage: npu-whisper bench --e2e (this module's entry point is internal)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

"""``npu-whisper bench --e2e``: whole transcriptions, ours against the peers, in one run.

Every file is decoded once (our ``load_audio``); each runner gets the same arrays and
the same decoding options. Runs alternate (ours, openai, faster-whisper, ours, ...) so
that load from other processes hits them alike; ``repeat`` rounds give min and median.
Two sets: the short clips one by one, and one long recording made by concatenating
them with short pauses. WER uses openai-whisper's ``EnglishTextNormalizer`` on both
sides (items without a reference only count for time).
"""

from __future__ import annotations

import json
import os
import statistics
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


class OursRunner:
    """Our pipeline (the Engine) on the cpu device with the given options."""

    name = "ours"

    def __init__(self, model: str, device: str = "cpu", device_options: dict | None = None, engine_options: dict | None = None) -> None:
        from .pipeline import Engine

        self.engine = Engine(model, device, device_options=device_options, **(engine_options or {}))
        opts = dict(device_options or {})
        opts.update(engine_options or {})
        self.description = f"npu-whisper on {self.engine.device_name} " + (json.dumps(opts, sort_keys=True) if opts else "(defaults)")

    def transcribe(self, audio: np.ndarray, settings: DecodeSettings) -> str:
        from .pipeline import TranscribeOptions

        opts = TranscribeOptions(
            language=settings.language,
            temperature=settings.temperatures,
            beam_size=settings.beam_size,
            condition_on_previous_text=settings.condition_on_previous_text,
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
) -> dict[str, Any]:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    settings = settings or DecodeSettings()
    items = load_items(manifest, folder, limit)
    if not items:
        raise ValueError("no audio items to benchmark")

    runners: dict[str, Any] = {"ours": OursRunner(model, device, device_options, engine_options)}
    for variant in also:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
        runners[f"ours+{variant}"] = OursRunner(model, device, device_options, {**(engine_options or {}), **VARIANTS[variant]})
    peer_info: dict[str, dict[str, Any]] = {n: {"available": True, "description": r.description} for n, r in runners.items()}
    for name in peers:
        try:
            runners[name] = make_peer(name, model)
            peer_info[name] = {"available": True, "description": runners[name].description}
        except PeerUnavailable as exc:
            peer_info[name] = {"available": False, "reason": str(exc)}

    sets: dict[str, list[Item]] = {}
    if short:
        sets["short"] = items
    if long:
        sets["long"] = [long_recording(items)]

    # warm-up: one short transcription each (lazy init, allocator, caches)
    warm = min(items, key=lambda it: it.seconds)
    for r in runners.values():
        r.transcribe(warm.audio, settings)

    times: dict[str, dict[str, list[float]]] = {s: {n: [] for n in runners} for s in sets}
    texts: dict[str, dict[str, list[str]]] = {s: {n: [] for n in runners} for s in sets}
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

    report: dict[str, Any] = {
        "model": model,
        "threads": torch.get_num_threads(),
        "repeat": repeat,
        "settings": {"language": settings.language, "temperatures": list(settings.temperatures), "beam_size": settings.beam_size, "condition_on_previous_text": settings.condition_on_previous_text},
        "load_average": list(os.getloadavg()),
        "runners": peer_info,
        "sets": {},
    }
    for set_name, set_items in sets.items():
        audio_s = sum(it.seconds for it in set_items)
        refs = [it.ref or "" for it in set_items]
        entry: dict[str, Any] = {"files": len(set_items), "audio_s": audio_s, "ids": [it.id for it in set_items], "runners": {}}
        for n in runners:
            row = _stats(times[set_name][n], audio_s)
            row["wer"] = wer(refs, texts[set_name][n])
            if "openai" in runners and n != "openai":
                row["wer_vs_openai"] = wer(texts[set_name]["openai"], texts[set_name][n])
                row["same_text_as_openai"] = sum(normalize(a) == normalize(b) for a, b in zip(texts[set_name]["openai"], texts[set_name][n]))
            row["texts"] = texts[set_name][n]
            entry["runners"][n] = row
        ours_names = [n for n in runners if n.startswith("ours")]
        # speed-up of each of our variants against each peer (peer time / our time)
        entry["speedups"] = {
            o: {
                n: {"min": entry["runners"][n]["min_s"] / entry["runners"][o]["min_s"], "median": entry["runners"][n]["median_s"] / entry["runners"][o]["median_s"]}
                for n in runners
                if n not in ours_names
            }
            for o in ours_names
        }
        entry["ours_speedup"] = entry["speedups"]["ours"]
        report["sets"][set_name] = entry
    for r in runners.values():
        r.close()
    report["text"] = format_report(report)
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"end to end · model {report['model']} · {report['threads']} threads · {report['repeat']} round(s) · load {report['load_average'][0]:.1f} · settings {json.dumps(report['settings'])}"]
    for name, info in report["runners"].items():
        lines.append(f"  {name:<15} " + (info["description"] if info["available"] else f"skipped: {info['reason']}"))
    for set_name, entry in report["sets"].items():
        lines.append("")
        lines.append(f"[{set_name}] {entry['files']} file(s), {entry['audio_s']:.1f} s of audio")
        lines.append(f"  {'runner':<20} {'min s':>7} {'median s':>9} {'RTF best':>9} {'RTF med':>8} {'WER %':>6} {'vs openai':>9}")
        for n, row in entry["runners"].items():
            w = "-" if row["wer"] is None else f"{row['wer']:.1f}"
            vs = row.get("wer_vs_openai")
            vs_s = "-" if vs is None else f"{vs:.1f}"
            lines.append(f"  {n:<20} {row['min_s']:>7.2f} {row['median_s']:>9.2f} {row['rtf']:>9.1f} {row['rtf_median']:>8.1f} {w:>6} {vs_s:>9}")
        for o, peers_x in entry.get("speedups", {"ours": entry["ours_speedup"]}).items():
            if peers_x:
                lines.append(f"  {o} x: " + ", ".join(f"{n} {x['min']:.2f} (med {x['median']:.2f})" for n, x in peers_x.items()))
    lines.append("")
    lines.append("RTF = seconds of audio per second of compute; 'x' = peer time / our time (>1: ours faster)")
    return "\n".join(lines)

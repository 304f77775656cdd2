"""A long-form benchmark set assembled deterministically from eval-dev.

Multi-minute recordings made of eval-dev's clips that have a reference (repeated, in a
seeded random order), espeak-ng sentences between them (known text, another voice),
and pauses: mostly short (0.2-1 s), some of 1-3 s and a few long ones (5-12 s) of faint
room noise, where nothing should be transcribed. The reference of a recording is the
texts in order. Built once into ``<cache>/longform-set-<key>/`` (WAV files and a
``manifest.jsonl`` in eval-dev's format).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please remember to bring your umbrella because it might rain this afternoon.",
    "Our meeting has been moved to Thursday at three o'clock in the small conference room.",
    "She opened the window and listened to the birds singing in the garden.",
    "The train to the city leaves every twenty minutes from the second platform.",
    "He wrote a long letter to his grandmother and posted it on Monday morning.",
    "Fresh bread and warm soup were waiting on the kitchen table.",
    "The library will be closed for repairs until the end of next month.",
    "They walked along the beach and collected shells until the sun went down.",
    "Turn left at the traffic lights and the museum is on your right.",
    "The children built a small wooden boat and sailed it across the pond.",
    "Every evening the old man fed the cats that lived behind the bakery.",
)
VERSION = 1


def _key(minutes: tuple[float, ...], seed: int, manifest: Path) -> str:
    h = hashlib.sha256(json.dumps([VERSION, list(minutes), seed, manifest.read_text(), SENTENCES]).encode())
    return h.hexdigest()[:12]


def _write_wav(path: Path, audio: np.ndarray) -> None:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def _espeak(text: str, workdir: Path) -> np.ndarray:
    from ..audio.decode import load_audio

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (scripts/setup.sh installs it)")
    out = workdir / f"{hashlib.sha1(text.encode()).hexdigest()[:10]}.wav"
    subprocess.run([exe, "-v", "en-us", "-s", "160", "-w", str(out), text], check=True, capture_output=True)
    return load_audio(out)


def build_longform_set(
    manifest: str | Path,
    cache_dir: str | Path | None = None,
    minutes: tuple[float, ...] = (3.0, 5.0),
    seed: int = 0,
) -> Path:
    """Build (once) and return the set's ``manifest.jsonl``."""
    from ..audio.decode import load_audio

    manifest = Path(manifest)
    if cache_dir is None:
        from ..model.convert import cache_dir as app_cache_dir

        cache_dir = app_cache_dir()
    out = Path(cache_dir) / f"longform-set-{_key(tuple(minutes), seed, manifest)}"
    if (out / "manifest.jsonl").exists():
        return out / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    clips = [(load_audio(manifest.parent / r["path"]), r["ref"]) for r in rows if r.get("ref")]
    if not clips:
        raise ValueError(f"{manifest}: no item with a reference")
    tmp = Path(tempfile.mkdtemp(prefix="longform-", dir=cache_dir))
    try:
        voices = [(_espeak(s, tmp), s) for s in SENTENCES]
        rng = np.random.default_rng(seed)
        lines = []
        for k, mins in enumerate(minutes):
            parts: list[np.ndarray] = []
            refs: list[str] = []
            n = 0
            while n < mins * 60 * SAMPLE_RATE:
                pool = clips if rng.random() < 0.6 else voices
                audio, ref = pool[int(rng.integers(len(pool)))]
                gain = float(rng.uniform(0.5, 1.0))
                u = rng.random()
                pause_s = rng.uniform(0.2, 1.0) if u < 0.7 else rng.uniform(1.0, 3.0) if u < 0.92 else rng.uniform(5.0, 12.0)
                pause = (rng.standard_normal(int(pause_s * SAMPLE_RATE)) * 1e-3).astype(np.float32)
                parts += [audio * gain, pause]
                refs.append(ref)
                n += audio.size + pause.size
            rec = np.concatenate(parts)
            name = f"long{k + 1}-{int(round(mins))}min.wav"
            _write_wav(tmp / name, rec)
            lines.append(json.dumps({"id": name[:-4], "path": name, "ref": " ".join(refs), "source": f"eval-dev + espeak-ng, seed {seed}", "seconds": round(rec.size / SAMPLE_RATE, 2)}))
        for f in tmp.glob("*.wav"):
            if not f.name.startswith("long"):
                f.unlink()
        (tmp / "manifest.jsonl").write_text("\n".join(lines) + "\n")
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out / "manifest.jsonl"

"""Cut a recording at pauses into chunks of at most 30 s (Silero VAD).

As faster-whisper's ``BatchedInferencePipeline`` and WhisperX do: speech regions from the
VAD's per-frame probabilities (Silero's own hysteresis: start at ``threshold``, end after
``min_silence_ms`` below ``threshold - 0.15``), padded, split where longer than a chunk at
their least speech-like frame, then adjacent regions merged into chunks while the chunk
stays within ``max_chunk_s``. A chunk is contiguous audio (the pauses inside it are kept)
so times inside it are the chunk's start plus Whisper's timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from ..live.vad import FRAME


@dataclass(frozen=True)
class VadOptions:
    threshold: float = 0.5
    min_silence_ms: int = 160  # a pause at least this long ends a speech region
    min_speech_ms: int = 250  # shorter regions are dropped (clicks, breaths)
    speech_pad_ms: int = 200  # audio kept before and after each region
    max_chunk_s: float = 30.0


@dataclass(frozen=True)
class Chunk:
    """Samples ``[start, end)`` of source ``source`` (an index into the job's inputs)."""

    start: int
    end: int
    source: int = 0

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def speech_regions(probs: np.ndarray, n_samples: int, opts: VadOptions = VadOptions()) -> list[tuple[int, int]]:
    """``[(start, end)]`` in samples, each at most ``max_chunk_s`` long."""
    neg = max(opts.threshold - 0.15, 0.01)
    min_silence = max(1, int(round(opts.min_silence_ms * SAMPLE_RATE / 1000 / FRAME)))
    regions: list[tuple[int, int]] = []
    start = None
    below = 0
    for i, p in enumerate(probs):
        if start is None:
            if p >= opts.threshold:
                start, below = i, 0
            continue
        if p < neg:
            below += 1
            if below >= min_silence:
                regions.append((start, i - below + 1))
                start = None
        else:
            below = 0
    if start is not None:
        regions.append((start, len(probs)))
    pad = int(opts.speech_pad_ms * SAMPLE_RATE / 1000)
    min_len = int(opts.min_speech_ms * SAMPLE_RATE / 1000)
    max_len = int(opts.max_chunk_s * SAMPLE_RATE)
    out: list[tuple[int, int]] = []
    for a, b in regions:
        s, e = a * FRAME, min(b * FRAME, n_samples)
        if e - s < min_len:
            continue
        for s2, e2 in _split_long(probs, s, e, max_len - 2 * pad):
            out.append((max(0, s2 - pad), min(n_samples, e2 + pad)))
    # padding may make neighbours overlap: meet in the middle
    for i in range(1, len(out)):
        (ps, pe), (s, e) = out[i - 1], out[i]
        if s < pe:
            mid = (s + pe) // 2
            out[i - 1], out[i] = (ps, mid), (mid, e)
    return [r for r in out if r[1] > r[0]]


def _split_long(probs: np.ndarray, s: int, e: int, max_len: int) -> list[tuple[int, int]]:
    """Split ``[s, e)`` into pieces of at most ``max_len`` samples at the frame with the
    lowest speech probability in the second half of each allowed span."""
    pieces = []
    while e - s > max_len:
        lo, hi = (s + max_len // 2) // FRAME, (s + max_len) // FRAME
        cut = (lo + int(np.argmin(probs[lo:hi]))) * FRAME if hi > lo else s + max_len
        cut = min(max(cut, s + FRAME), s + max_len)
        pieces.append((s, cut))
        s = cut
    pieces.append((s, e))
    return pieces


def merge_regions(regions: list[tuple[int, int]], max_chunk_s: float = 30.0, source: int = 0) -> list[Chunk]:
    """Adjacent regions joined into chunks while a chunk spans at most ``max_chunk_s``."""
    max_len = int(max_chunk_s * SAMPLE_RATE)
    chunks: list[Chunk] = []
    cur: list[int] | None = None
    for s, e in regions:
        if cur is not None and e - cur[0] <= max_len:
            cur[1] = e
            continue
        if cur is not None:
            chunks.append(Chunk(cur[0], cur[1], source))
        cur = [s, e]
    if cur is not None:
        chunks.append(Chunk(cur[0], cur[1], source))
    return chunks


HOP = 160  # a chunk starts on a mel frame: openai-whisper's word timing reads seek * HOP


def chunk_probs(probs: np.ndarray, n_samples: int, opts: VadOptions = VadOptions(), source: int = 0) -> list[Chunk]:
    """Chunks of one recording from its VAD probabilities (starts on whole mel frames)."""
    chunks = merge_regions(speech_regions(probs, n_samples, opts), opts.max_chunk_s, source)
    return [Chunk(c.start - c.start % HOP, c.end, c.source) for c in chunks]


def vad_probs(audio: np.ndarray, vad: object | None = None) -> np.ndarray:
    """Silero probabilities (one per 512 samples) of a whole array (by default the
    batched Silero of :mod:`.vad_batched`)."""
    from .vad_batched import create_batched_vad

    vad = vad if vad is not None else create_batched_vad()
    vad.reset()
    probs = vad.process(np.asarray(audio, np.float32))
    rest = audio.size - probs.size * FRAME
    if rest > 0:  # the last partial frame, zero-padded
        probs = np.concatenate([probs, vad.process(np.zeros(FRAME - rest, np.float32))])
    return probs


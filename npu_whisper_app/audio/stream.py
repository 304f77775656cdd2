"""Audio and log-mel a window at a time, so a long recording never sits in memory whole.

openai-whisper's ``transcribe`` holds the whole audio, its STFT and its log-mel at once
(an hour of audio: ~2.9 GB resident). Here:

- :func:`iter_blocks` decodes a file with PyAV into 16 kHz mono float32 blocks;
- :class:`FileSamples` / :class:`ArraySamples` hand out samples ``[a, b)`` in Whisper's
  STFT coordinates (negative positions reflect, as ``torch.stft(center=True)`` pads; past
  the end zeros, as ``log_mel_spectrogram(audio, padding=N_SAMPLES)`` pads). The file
  reader decodes forward and keeps only what the next window can still need;
- :class:`StreamingMel` is a :class:`~npu_whisper_app.jobs.MelSource`: ``frames(start,
  end)`` equals ``whisper.log_mel_spectrogram(audio, padding=N_SAMPLES)[:, start:end]``
  for frames inside the audio (zero past it, as transcribe's ``pad_or_trim`` pads), up to
  FFT rounding (tested within 1e-4).

Whisper's log-mel clamps every value to ``max - 8`` with the max over the *whole*
recording. That max is found honestly by a first pass (:func:`scan`: decode + STFT,
nothing kept but a running max, the sample count and, optionally, VAD probabilities);
the cost is one more decode and STFT of the file (measured in benchmarks/long_memory.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import SAMPLE_RATE

N_FFT = 400
HOP = 160
HALF = N_FFT // 2
LOG_FLOOR = -10.0  # log10 of the 1e-10 clamp: what a frame of pure padding gives
BLOCK_SAMPLES = 30 * SAMPLE_RATE  # decode granularity of the streaming readers


def iter_blocks(path: str | Path, block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """The file's first audio stream as 16 kHz mono float32 blocks of ``block_samples``
    (the last one shorter). Raises :class:`~.decode.AudioError` like ``load_audio``."""
    import av

    from .decode import AudioError, _short

    p = Path(path)
    if not p.exists():
        raise AudioError(p, "file not found")
    if p.is_dir() or p.stat().st_size == 0:
        raise AudioError(p, "is a directory, not an audio file" if p.is_dir() else "file is empty")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioError(p, f"not a readable audio/video file ({_short(exc)})") from None
    pending: list[np.ndarray] = []
    have = 0
    emitted = False
    try:
        if not container.streams.audio:
            raise AudioError(p, "contains no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

        def outs() -> Iterator[np.ndarray]:
            try:
                for frame in container.decode(container.streams.audio[0]):
                    for out in resampler.resample(frame):
                        yield out.to_ndarray().reshape(-1)
            except (av.error.FFmpegError, ValueError) as exc:
                if not emitted and not pending:
                    raise AudioError(p, f"cannot decode audio ({_short(exc)})") from None
            for out in resampler.resample(None):  # a truncated tail: keep what decoded
                yield out.to_ndarray().reshape(-1)

        for chunk in outs():
            pending.append(chunk.astype(np.float32, copy=False))
            have += chunk.size
            while have >= block_samples:
                data = np.concatenate(pending)
                yield data[:block_samples].copy()
                emitted = True
                rest = data[block_samples:]
                pending, have = ([rest] if rest.size else []), rest.size
        if have:
            yield np.concatenate(pending)
            emitted = True
    finally:
        container.close()
    if not emitted:
        raise AudioError(p, "no audio samples could be decoded (empty or truncated)")


def _with_context(get: Callable[[int, int], np.ndarray], n: int, a: int, b: int) -> np.ndarray:
    """Samples ``[a, b)`` of a recording of ``n`` samples in the STFT's coordinates:
    position -k is sample k (reflect padding), positions >= n are 0. ``get(lo, hi)``
    returns real samples with 0 <= lo <= hi <= n."""
    out = np.zeros(b - a, np.float32)
    lo, hi = max(a, 0), min(b, n)
    if hi > lo:
        out[lo - a : hi - a] = get(lo, hi)
    if a < 0:  # reflect: position p < 0 holds sample -p
        k = min(-a, b - a)
        idx = np.arange(-a, -a - k, -1)  # positions a..a+k-1 -> samples -a..-a-k+1
        ok = idx < n
        vals = np.zeros(k, np.float32)
        if ok.any():
            top = int(idx[ok].max()) + 1
            vals[ok] = get(0, min(top, n))[idx[ok]]
        out[:k] = vals
    return out


class ArraySamples:
    """Samples of an in-memory array (the :class:`StreamingMel` reader for arrays)."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = np.asarray(audio, np.float32).reshape(-1)
        self.n_samples = int(self.audio.size)

    def read(self, a: int, b: int) -> np.ndarray:
        return _with_context(lambda lo, hi: self.audio[lo:hi], self.n_samples, a, b)


class FileSamples:
    """Samples of a file decoded forward on demand: it keeps only samples at or after the
    last request's start, so reading windows in increasing order holds about one window
    in memory. A request that starts before what is kept decodes again from the start
    (correct, slower; transcribe loops only move forward)."""

    def __init__(self, path: str | Path, n_samples: int, block_samples: int = BLOCK_SAMPLES) -> None:
        self.path = Path(path)
        self.n_samples = n_samples
        self.block_samples = block_samples
        self.restarts = 0
        self._open()

    def _open(self) -> None:
        self._blocks = iter_blocks(self.path, self.block_samples)
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # sample index of _buf[0]

    def _get(self, lo: int, hi: int) -> np.ndarray:
        if lo < self._buf_start:
            self.restarts += 1
            self._open()
        # drop what no later request (at or after lo) can need
        if lo > self._buf_start:
            cut = min(lo - self._buf_start, self._buf.size)
            self._buf, self._buf_start = self._buf[cut:], self._buf_start + cut
        parts = [self._buf]
        end = self._buf_start + self._buf.size
        while end < hi:
            block = next(self._blocks, None)
            if block is None:
                break
            parts.append(block)
            end += block.size
        if len(parts) > 1:
            self._buf = np.concatenate(parts)
        out = self._buf[lo - self._buf_start : hi - self._buf_start]
        if out.size < hi - lo:  # the file decoded shorter than the first pass said
            out = np.concatenate([out, np.zeros(hi - lo - out.size, np.float32)])
        return out

    def read(self, a: int, b: int) -> np.ndarray:
        # the reflected head (a < 0) needs samples 0..200: keep them by reading from 0
        return _with_context(self._get, self.n_samples, a, b)


def log10_mel(x: np.ndarray, n_frames: int, n_mels: int = 80) -> torch.Tensor:
    """``log10(max(mel, 1e-10))`` of ``n_frames`` frames from samples ``x`` that span
    ``(n_frames - 1) * 160 + 400`` (frame i centred at ``x[200 + 160 i]``): the same
    products as ``whisper.log_mel_spectrogram`` before its clamp and scaling."""
    import whisper.audio as wa

    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    stft = torch.stft(t, N_FFT, HOP, window=torch.hann_window(N_FFT), center=False, return_complex=True)
    mags = stft.abs() ** 2
    mel = wa.mel_filters(torch.device("cpu"), n_mels) @ mags
    assert mel.shape[-1] == n_frames, (mel.shape, n_frames)
    return torch.clamp(mel, min=1e-10).log10()


def frames_raw(read: Callable[[int, int], np.ndarray], start: int, end: int, n_mels: int = 80) -> torch.Tensor:
    """Unclamped log10-mel frames ``[start, end)`` from a sample reader."""
    return log10_mel(read(start * HOP - HALF, (end - 1) * HOP + HALF), end - start, n_mels)


@dataclass
class Scan:
    """What the first pass over a recording found."""

    n_samples: int
    log_max: float  # max of the log10-mel over the whole (padded) recording
    vad_probs: np.ndarray | None = None  # one Silero probability per 512 samples


def scan(blocks: Iterator[np.ndarray], n_mels: int = 80, vad: object | None = None, chunk_frames: int = 3000) -> Scan:
    """One pass over the blocks: sample count, the log-mel max Whisper clamps with, and
    (with ``vad``, an object with ``process(samples) -> probs``) VAD probabilities.
    Holds about one block plus ``chunk_frames`` frames of STFT at a time."""
    tail = np.zeros(0, np.float32)  # samples not yet covered by finished frames
    tail_start = 0
    n = 0
    next_frame = 0
    best = LOG_FLOOR  # frames of pure padding
    probs: list[np.ndarray] = []

    def emit(final: bool) -> None:
        nonlocal tail, tail_start, next_frame, best
        while True:
            # frame i needs samples up to i*160+200; with ``final`` the rest is zeros
            avail = (tail_start + tail.size - HALF) // HOP + 1 if not final else n // HOP + 3
            last = min(avail, next_frame + chunk_frames)
            if last <= next_frame:
                return
            a, b = next_frame * HOP - HALF, (last - 1) * HOP + HALF
            # a < 0 only for the first chunk, while tail still starts at sample 0
            x = _with_context(lambda lo, hi, tail=tail, start=tail_start: tail[lo - start : hi - start], tail_start + tail.size, a, b)
            best = max(best, float(log10_mel(x, last - next_frame, n_mels).max()))
            next_frame = last
            keep = next_frame * HOP - HALF
            if keep > tail_start:
                cut = min(keep - tail_start, tail.size)
                tail, tail_start = tail[cut:], tail_start + cut

    for block in blocks:
        block = np.asarray(block, np.float32).reshape(-1)
        if vad is not None and block.size:
            probs.append(vad.process(block))
        tail = np.concatenate([tail, block])
        n += block.size
        emit(final=False)
    emit(final=True)
    return Scan(n, best, np.concatenate(probs) if probs else (np.zeros(0, np.float32) if vad is not None else None))


class StreamingMel:
    """A :class:`~npu_whisper_app.jobs.MelSource` over a sample reader (see module doc)."""

    def __init__(self, samples: ArraySamples | FileSamples, log_max: float, n_mels: int = 80) -> None:
        self.samples = samples
        self.n_mels = n_mels
        self.log_max = log_max
        self.n_samples = samples.n_samples
        self.n_frames = self.n_samples // HOP  # as transcribe's content_frames

    def frames(self, start: int, end: int) -> np.ndarray:
        out = np.zeros((self.n_mels, max(end - start, 0)), np.float32)
        hi = min(end, self.n_frames)
        if hi > start:
            raw = frames_raw(self.samples.read, start, hi, self.n_mels)
            out[:, : hi - start] = ((torch.maximum(raw, torch.tensor(self.log_max - 8.0)) + 4.0) / 4.0).numpy()
        return out


def mel_source_for_array(audio: np.ndarray, n_mels: int = 80) -> StreamingMel:
    """A MelSource over an in-memory 16 kHz array (the max found chunk by chunk: the
    full STFT is never held)."""
    samples = ArraySamples(audio)
    found = scan(iter(np.array_split(samples.audio, max(1, -(-samples.n_samples // BLOCK_SAMPLES)))), n_mels)
    return StreamingMel(samples, found.log_max, n_mels)


def mel_source_for_file(
    path: str | Path, n_mels: int = 80, vad: object | None = None, block_samples: int = BLOCK_SAMPLES
) -> tuple[StreamingMel, Scan]:
    """A MelSource over a file: a first pass (decode + STFT, optionally VAD) for the
    sample count and the log-mel max, then windows decoded on demand."""
    found = scan(iter_blocks(path, block_samples), n_mels, vad=vad)
    return StreamingMel(FileSamples(path, found.n_samples, block_samples), found.log_max, n_mels), found


def mel_source(audio: np.ndarray | str | Path, n_mels: int = 80) -> StreamingMel:
    """:func:`mel_source_for_array` or :func:`mel_source_for_file`."""
    if isinstance(audio, np.ndarray):
        return mel_source_for_array(audio, n_mels)
    return mel_source_for_file(audio, n_mels)[0]


__all__ = [
    "ArraySamples", "FileSamples", "Scan", "StreamingMel", "frames_raw", "iter_blocks",
    "log10_mel", "mel_source", "mel_source_for_array", "mel_source_for_file", "scan",
]

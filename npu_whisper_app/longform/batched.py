"""Batched long-form transcription: speech chunks at pauses, decoded as one batch.

The recording (or many recordings) is cut at pauses into chunks of at most 30 s
(:mod:`.chunks`); each chunk's log-mel is computed on its own (its own max, as if the
chunk were a file, as faster-whisper's batched pipeline does) and encoded on a window
trimmed to its own length (+ margin, whole 128-frame tiles: :func:`window_frames`); the
decoder attends to each window's own frames, so a chunk reads the same whatever it is
batched with (without the fast decoder, which masks the padding, every window of a
batch takes the longest chunk's length); ``batch_size``
chunks are then decoded together by openai-whisper's ``DecodingTask`` (tokenizer, logit
filters, timestamp rules) through the fast decoder: one compiled step a token for all
rows, each row with its own kv cache and its own cross-attention keys/values. A row
whose result fails openai-whisper's fallback rules (compression ratio, log-probability)
is decoded again at the next temperature, with the other failing rows only.

No chunk is conditioned on another's text (the loops the sequential mode can fall into
come from that conditioning); ``initial_prompt`` is given to every chunk.

Memory: a file is read twice, forward (:mod:`..audio.stream`): once for the VAD (the
per-frame probabilities are kept, 4 bytes per 32 ms) and once for the batches' audio;
nothing holds more than a batch of chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import whisper
from whisper.audio import HOP_LENGTH, N_FRAMES
from whisper.tokenizer import Tokenizer, get_tokenizer

from ..audio import SAMPLE_RATE
from ..audio.stream import ArraySamples, FileSamples, StreamingMel, iter_blocks, scan
from ..jobs import IDLE, JobContext
from ..model.whisper_loop import InferenceFactory, decode_features, language_of_features
from .chunks import Chunk, VadOptions, chunk_probs, vad_probs
from .vad_batched import create_batched_vad

_log = logging.getLogger(__name__)

TILE_FRAMES = 128  # the encoder's 64-row attention tiles, in mel frames
#: a chunk's window: its frames + MARGIN, at least MIN_WINDOW (see --short-window: windows
#: under ~12 s made Whisper loop or misread)
MIN_WINDOW_S = 12.0
MARGIN_S = 3.0
TIME_PRECISION = 0.02
#: a chunk quieter than this peak level is raised to it before its log-mel
TARGET_PEAK_DB = -6.0
MAX_GAIN_DB = 50.0

SegmentSink = Callable[[int, dict], None]  # (input index, finished segment)


@dataclass
class BatchedStats:
    """What a run did (for benchmarks and the report)."""

    chunks: int = 0
    batches: int = 0
    fallback_rows: int = 0
    loops_stopped: int = 0  # rows ended early by StopLoops
    encoded_frames: int = 0
    audio_s: float = 0.0
    speech_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class _Source:
    """One input: its samples (an array, or a file read forward) and its chunks."""

    def __init__(self, index: int, audio: np.ndarray | str | Path, vad_opts: VadOptions, vad: Any) -> None:
        from ..live.vad import FRAME

        self.index = index
        if isinstance(audio, np.ndarray):
            self.samples: ArraySamples | FileSamples = ArraySamples(audio)
            probs = vad_probs(self.samples.audio, vad)
        else:
            vad.reset()
            found = scan(iter_blocks(audio), vad=vad)
            probs = found.vad_probs if found.vad_probs is not None else np.zeros(0, np.float32)
            if found.n_samples > probs.size * FRAME:  # the last partial frame
                probs = np.concatenate([probs, vad.process(np.zeros(FRAME, np.float32))[:1]])
            self.samples = FileSamples(audio, found.n_samples)
        self.n_samples = self.samples.n_samples
        self.chunks = chunk_probs(probs, self.n_samples, vad_opts, index)

    @property
    def seconds(self) -> float:
        return self.n_samples / SAMPLE_RATE


def raised_to_speech_level(audio: np.ndarray) -> np.ndarray:
    """The chunk raised so that its peak reaches ``TARGET_PEAK_DB`` (never lowered, at most
    ``MAX_GAIN_DB``). Whisper's log-mel keeps the absolute level, and on a trimmed window
    quiet speech is misread: eval-dev's clips 40 dB down read at WER 33 % (loops,
    dropped words) against 7.4 % as recorded; raised, 7.4 %. Loud chunks are untouched."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0.0:
        return audio
    gain_db = min(MAX_GAIN_DB, TARGET_PEAK_DB - 20.0 * np.log10(peak))
    return audio * np.float32(10.0 ** (gain_db / 20.0)) if gain_db > 0.0 else audio


def _chunk_mel(samples: ArraySamples | FileSamples, chunk: Chunk, n_mels: int) -> torch.Tensor:
    """The chunk's log-mel as Whisper computes a file's (``[n_mels, content frames]``),
    quiet chunks raised first (:func:`raised_to_speech_level`)."""
    audio = raised_to_speech_level(samples.read(chunk.start, chunk.end))
    src = StreamingMel(ArraySamples(audio), log_max=_log_max(audio, n_mels), n_mels=n_mels)
    return torch.from_numpy(src.frames(0, src.n_frames))


def _log_max(audio: np.ndarray, n_mels: int) -> float:
    return scan(iter([audio]), n_mels).log_max


def batch_bounds(n: int, batch_size: int, first_batch_size: int | None = None) -> list[tuple[int, int]]:
    """``[(start, end)]`` of the batches of ``n`` chunks: the first ``first_batch_size``
    long where given, the others ``batch_size``."""
    first = min(n, max(1, first_batch_size)) if first_batch_size else 0
    return ([(0, first)] if first else []) + [(b, min(n, b + batch_size)) for b in range(first, n, batch_size)]


def window_frames(content: int, trimmed: bool) -> int:
    """Frames encoded for a batch whose longest chunk has ``content`` frames."""
    if not trimmed:
        return N_FRAMES
    per_s = SAMPLE_RATE / HOP_LENGTH
    need = max(int(MIN_WINDOW_S * per_s), content + int(MARGIN_S * per_s))
    return min(N_FRAMES, -(-need // TILE_FRAMES) * TILE_FRAMES)


def _encode(model: Any, mel: torch.Tensor, own: list[int]) -> tuple[torch.Tensor, list[int]]:
    """``mel[B, n_mels, frames]``'s features, each row encoded over its own ``own[i]``
    frames (rows of one length together), zero-padded to the longest; and each row's
    feature count."""
    if len(set(own)) == 1:
        features = model.encoder(mel[..., : own[0]])
        return features, [features.shape[1]] * len(own)
    features = None
    counts = [0] * len(own)
    for w in sorted(set(own), reverse=True):
        rows = [i for i, n in enumerate(own) if n == w]
        part = model.encoder(mel[rows, :, :w])
        if features is None:
            features = part.new_zeros((mel.shape[0], part.shape[1], part.shape[2]))
        features[rows, : part.shape[1]] = part
        for i in rows:
            counts[i] = part.shape[1]
    assert features is not None
    return features, counts


def _decoding_options(options: Any, temperature: float, language: str | None, prompt: list[int] | None) -> whisper.DecodingOptions:
    kw: dict[str, Any] = dict(
        task=options.task, language=language, temperature=temperature, prompt=prompt,
        suppress_tokens=options.suppress_tokens, without_timestamps=False, fp16=False,
    )
    if temperature > 0:
        if options.best_of is not None:
            kw["best_of"] = options.best_of
    elif options.beam_size is not None:
        kw["beam_size"] = options.beam_size
        kw["patience"] = options.patience
    if options.length_penalty is not None:
        kw["length_penalty"] = options.length_penalty
    return whisper.DecodingOptions(**kw)


def _needs_fallback(r: whisper.DecodingResult, options: Any) -> bool:
    """openai-whisper's ``decode_with_fallback`` rule for one result."""
    bad = False
    if options.compression_ratio_threshold is not None and r.compression_ratio > options.compression_ratio_threshold:
        bad = True
    if options.logprob_threshold is not None and r.avg_logprob < options.logprob_threshold:
        bad = True
    if (
        options.no_speech_threshold is not None and r.no_speech_prob > options.no_speech_threshold
        and options.logprob_threshold is not None and r.avg_logprob < options.logprob_threshold
    ):
        bad = False  # silence
    return bad


def decode_rows(
    model: Any, features: torch.Tensor, options: Any, language: str | None, prompt: list[int] | None, ctx: JobContext,
    stats: BatchedStats, make_inference: InferenceFactory | None = None, frames: list[int] | None = None,
) -> list[whisper.DecodingResult]:
    """Decode every row of ``features[B, T, D]`` with temperature fallback per row;
    ``frames``: each row's own frames (the rest zero padding)."""
    temps = tuple(options.temperature) if isinstance(options.temperature, (tuple, list)) else (float(options.temperature),)
    results: list[whisper.DecodingResult | None] = [None] * features.shape[0]
    pending = list(range(features.shape[0]))
    for k, t in enumerate(temps):
        ctx.check_stop()
        sub = features[pending] if len(pending) != features.shape[0] else features
        sub_frames = None if frames is None else [frames[i] for i in pending]
        if sub_frames is not None:
            sub = sub[:, : max(sub_frames)]
        if k:
            stats.fallback_rows += len(pending)
        out, stopped = decode_features(
            model, sub, _decoding_options(options, t, language, prompt), make_inference, options.compression_ratio_threshold, sub_frames
        )
        stats.loops_stopped += stopped
        still = []
        for idx, r in zip(pending, out):
            results[idx] = r
            if k + 1 < len(temps) and _needs_fallback(r, options):
                still.append(idx)
        pending = still
        if not pending:
            break
    return results  # type: ignore[return-value]


def _segments(result: whisper.DecodingResult, tokenizer: Tokenizer, chunk: Chunk) -> list[dict]:
    """openai-whisper's segments of one chunk's tokens, at absolute times. Unlike the
    sequential loop, text after the last timestamp pair is kept (the chunk ends there)."""
    tokens = torch.tensor(result.tokens)
    offset = chunk.start / SAMPLE_RATE
    end_s = chunk.end / SAMPLE_RATE
    seek = chunk.start // HOP_LENGTH
    tb = tokenizer.timestamp_begin

    def seg(start: float, end: float, toks: torch.Tensor) -> dict:
        toks_l = toks.tolist()
        return {
            "seek": seek, "start": round(min(start, end_s), 3), "end": round(min(max(end, start), end_s), 3),
            "text": tokenizer.decode([t for t in toks_l if t < tokenizer.eot]), "tokens": toks_l,
            "temperature": result.temperature, "avg_logprob": result.avg_logprob,
            "compression_ratio": result.compression_ratio, "no_speech_prob": result.no_speech_prob,
        }

    if tokens.numel() == 0:
        return []
    is_ts = tokens.ge(tb)
    consecutive = (torch.where(is_ts[:-1] & is_ts[1:])[0] + 1).tolist()
    out = []
    last = 0
    for cut in consecutive:
        part = tokens[last:cut]
        out.append(seg(offset + (part[0].item() - tb) * TIME_PRECISION, offset + (part[-1].item() - tb) * TIME_PRECISION, part))
        last = cut
    rest = tokens[last:]
    if rest.numel() and rest.lt(tb).any():
        # the chunk's last segment: "<|a|> text <|b|>" or, unfinished, "<|a|> text"
        start = offset + (rest[0].item() - tb) * TIME_PRECISION if rest[0].item() >= tb else offset
        closed = rest.numel() > 1 and rest[-1].item() >= tb
        out.append(seg(start, offset + (rest[-1].item() - tb) * TIME_PRECISION if closed else end_s, rest))
    return [s for s in out if s["text"].strip()]


def _skip(r: whisper.DecodingResult, options: Any) -> bool:
    """openai-whisper's no-speech rule."""
    if options.no_speech_threshold is None or r.no_speech_prob <= options.no_speech_threshold:
        return False
    return not (options.logprob_threshold is not None and r.avg_logprob > options.logprob_threshold)


def transcribe_batched_many(
    model: Any,
    inputs: Sequence[np.ndarray | str | Path],
    options: Any,
    ctx: JobContext = IDLE,
    *,
    batch_size: int = 8,
    first_batch_size: int | None = None,
    trimmed: bool | None = None,
    vad_options: VadOptions = VadOptions(),
    on_file_segment: SegmentSink | None = None,
    stats: BatchedStats | None = None,
    make_inference: InferenceFactory | None = None,
) -> list[dict]:
    """Transcribe several recordings with their chunks pooled into batches (in input
    order, so short files share batches). Returns one openai-whisper result dict per
    input (``text``, ``segments``, ``language``). ``ctx.on_segment`` gets every segment
    in order, ``on_file_segment(i, seg)`` the same with the input's index;
    ``ctx.on_progress(done_s, total_s)`` after each batch; ``ctx.check_stop()`` is
    called between batches and decoded temperatures (and the fast decoder/encoder poll
    their own stop flags). ``trimmed``: encode windows over the chunks' frames (default
    where the encoder is our TiledEncoder on a device that takes any number of frames).
    ``first_batch_size``: a smaller first batch, so that the first text comes sooner (the
    app shows segments as they come; a batch's come when it is decoded)."""
    from ..model.encoder import TiledEncoder

    stats = stats if stats is not None else BatchedStats()
    if trimmed is None:
        trimmed = isinstance(model.encoder, TiledEncoder) and model.encoder.device.any_frames
    n_mels = model.dims.n_mels
    language = options.language if model.is_multilingual else "en"
    tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language or "en", task=options.task)
    prompt = tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else None
    beams = max(options.beam_size or 1, 1)
    batch_size = max(1, min(batch_size, 8 // beams)) if beams > 1 else batch_size

    vad = create_batched_vad(on_notice=_log.warning)
    sources = [_Source(i, a, vad_options, vad) for i, a in enumerate(inputs)]
    total_s = sum(s.seconds for s in sources)
    before = [sum(s.seconds for s in sources[:i]) for i in range(len(sources))]
    chunks = [c for s in sources for c in s.chunks]
    stats.chunks += len(chunks)
    stats.audio_s += total_s
    stats.speech_s += sum(c.seconds for c in chunks)
    segments: list[list[dict]] = [[] for _ in sources]
    last_speech = [0.0 for _ in sources]

    for b0, b1 in batch_bounds(len(chunks), batch_size, first_batch_size):
        ctx.check_stop()
        batch = chunks[b0:b1]
        mels = [_chunk_mel(sources[c.source].samples, c, n_mels) for c in batch]
        if trimmed and make_inference is not None:  # each chunk on its own window
            own = [window_frames(m.shape[-1], trimmed) for m in mels]
        else:
            own = [window_frames(max(m.shape[-1] for m in mels), trimmed)] * len(batch)
        frames = max(own)
        mel = torch.zeros(len(batch), n_mels, frames)
        for i, m in enumerate(mels):
            mel[i, :, : min(m.shape[-1], own[i])] = m[:, : own[i]]
        stats.batches += 1
        stats.encoded_frames += sum(own)
        with torch.inference_mode():
            features, counts = _encode(model, mel, own)
            if language is None:  # openai-whisper detects on the first window; so do we
                probs = language_of_features(model, features[:1, : counts[0]], tokenizer)
                language = max(probs, key=probs.get)
                tokenizer = get_tokenizer(True, num_languages=model.num_languages, language=language, task=options.task)
            ragged = counts if len(set(counts)) > 1 else None  # windows of their own lengths
            results = decode_rows(model, features, options, language, prompt, ctx, stats, make_inference, ragged)
        for i, (c, r) in enumerate(zip(batch, results)):
            if _skip(r, options):
                continue
            segs = _segments(r, tokenizer, c)
            if options.word_timestamps and segs:
                from ..model.whisper_loop import add_word_timestamps

                content = min(mels[i].shape[-1], own[i])
                with torch.inference_mode():
                    add_word_timestamps(
                        segments=segs, model=model, tokenizer=tokenizer, mel=mel[i, :, : own[i]], num_frames=content,
                        prepend_punctuations=options.prepend_punctuations, append_punctuations=options.append_punctuations,
                        last_speech_timestamp=last_speech[c.source],
                    )
                words = [w for s in segs for w in s.get("words", [])]
                if words:
                    last_speech[c.source] = words[-1]["end"]
            out = segments[c.source]
            for s in segs:
                s["id"] = len(out)
                out.append(s)
                if ctx.on_segment is not None:
                    ctx.on_segment(s)
                if on_file_segment is not None:
                    on_file_segment(c.source, s)
        if ctx.on_progress is not None:
            last = batch[-1]
            ctx.on_progress(min(total_s, before[last.source] + last.end / SAMPLE_RATE), total_s)
        # not alive while the next batch is read and encoded (a result's audio_features
        # is a view of the whole batch's features)
        del mels, mel, features, results, r
        if ctx.between_windows is not None:
            ctx.between_windows()
    if ctx.on_progress is not None:
        ctx.on_progress(total_s, total_s)
    return [{"text": "".join(s["text"] for s in segs), "segments": segs, "language": language or "en"} for segs in segments]


def transcribe_batched(
    model: Any,
    audio_or_path: np.ndarray | str | Path,
    options: Any,
    ctx: JobContext = IDLE,
    *,
    batch_size: int = 8,
    trimmed: bool | None = None,
    vad_options: VadOptions = VadOptions(),
    stats: BatchedStats | None = None,
    make_inference: InferenceFactory | None = None,
) -> dict:
    """One recording (16 kHz mono float32 array, or a file path, read forward twice and
    never held whole) in batched mode; openai-whisper's result dict. See
    :func:`transcribe_batched_many`."""
    return transcribe_batched_many(
        model, [audio_or_path], options, ctx, batch_size=batch_size, trimmed=trimmed, vad_options=vad_options, stats=stats,
        make_inference=make_inference,
    )[0]

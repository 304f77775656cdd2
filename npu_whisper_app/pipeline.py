"""The engine: the one way in to a loaded Whisper model whose encoder runs on a device.

One :class:`Engine` owns the model and the device (keep it on one thread: the app's
:class:`~npu_whisper_app.engine_host.EngineHost` does); it runs jobs one after another:
files (:meth:`Engine.transcribe`) and dictated utterances
(:meth:`Engine.decode_utterance`). Per-job values travel in a
:class:`~npu_whisper_app.jobs.JobContext` handed to the encoder and the decoder for the
job's duration; progress, finished segments, timing batches and notices reach the caller
through plain callbacks, so the GUI, the CLI and the benchmarks share it. Everything we
use of openai-whisper beyond its public calls lives in ``model/whisper_loop.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import whisper
from torch import nn

from .audio import SAMPLE_RATE
from .audio.decode import audio_duration, load_audio
from .devices import create_device, pick_auto
from .devices.allocator import keep_freed_memory, release_freed_memory
from .devices.base import Device, DeviceError
from .jobs import Cancelled, JobContext, ProgressFn, SegmentFn
from .live.decoder import Decoded, DecoderOptions
from .longform import BatchedStats
from .model import whisper_loop
from .model.encoder import TiledEncoder
from .profiling import Recorder, TimingEvent
from .transcribe_options import BATCHED_AUTO_MIN_S, DEFAULT_TEMPERATURES, TranscribeOptions

__all__ = [
    "BATCHED_AUTO_MIN_S", "DEFAULT_TEMPERATURES", "DECODERS", "Engine", "TranscribeOptions", "TranscriptResult", "drop_silent_segments",
    "is_silent",
]

NoticeFn = Callable[[str], None]

# short_window: the encoded window is the audio + 3 s, at least 12 s. On eval-dev (base):
# no minimum with 0 s margin loops, with 1 s misreads; windows under ~12 s loop when the
# previous text is the prompt (seen live); 12 s + 3 s keeps the WER (7.4 against 9.3 on
# the full window) with 10 of 12 clips word for word
SHORT_WINDOW_MIN_S = 12.0
SHORT_WINDOW_MARGIN_S = 3.0
SILENCE_PEAK = 10 ** (-60 / 20)
#: ``fast``: our token step (compiled, fp16 weight copies); ``fast-fp32``: the same loop
#: without the compiled kernel; ``fast-loop``: the kernel per product from a Python loop
#: (the last two for benchmarks/decoder_variants.py); ``openai``: openai-whisper's own
DECODERS = ("fast", "fast-fp32", "fast-loop", "openai")  # -60 dBFS: nothing below this is speech


def is_silent(audio: np.ndarray) -> bool:
    """True when no sample reaches -60 dBFS (digital silence, a muted input)."""
    return audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK


def drop_silent_segments(result: dict, audio: np.ndarray) -> dict:
    """Remove segments whose audio span is silent: Whisper invents "you" / "Thank you."
    there with a confident log-probability, which its no-speech rule lets through."""
    kept = []
    for seg in result.get("segments", []):
        a = audio[int(seg["start"] * SAMPLE_RATE) : int(seg["end"] * SAMPLE_RATE) + 1]
        if seg.get("text", "").strip() and not is_silent(a):
            kept.append(seg)
    if len(kept) != len(result.get("segments", [])):
        result = dict(result, segments=kept, text="".join(seg["text"] for seg in kept))
    return result


@dataclass
class TranscriptResult:
    """What a job produced. ``result`` is openai-whisper's dict (text, segments, language)."""

    source: str
    result: dict
    duration_s: float
    elapsed_s: float
    encoder_s: float
    device: str
    model: str
    events: list[TimingEvent] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    cancelled: bool = False

    @property
    def text(self) -> str:
        return self.result.get("text", "")

    @property
    def segments(self) -> list[dict]:
        return self.result.get("segments", [])

    @property
    def language(self) -> str | None:
        return self.result.get("language")

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio per second of compute (higher is faster)."""
        return self.duration_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


class Engine:
    """A loaded model with its encoder on a device. Use from one thread."""

    def __init__(
        self,
        model: str = "base",
        device: str = "auto",
        recorder: Recorder | None = None,
        on_notice: NoticeFn | None = None,
        device_options: dict[str, Any] | None = None,
        decoder: str = "fast",
        decoder_quant: str = "none",
        short_window: bool = False,
    ) -> None:
        from .model.resolve import load_whisper_model, resolve_model

        keep_freed_memory()
        self.recorder = recorder if recorder is not None else Recorder()
        # the encoder's time, counted as batches of events pass (so also with a recorder
        # that keeps none: a long job's events are ~40 MB an hour)
        self._encoder_ns = 0
        self.recorder.add_listener(self._count_encoder)
        self.notices: list[str] = []
        self._on_notice = on_notice
        self.auto_reason = ""
        if device == "auto":
            device, self.auto_reason = pick_auto()
        self.requested_device = device
        self.source = resolve_model(model)
        self.model_name = self.source.name
        self._model = load_whisper_model(model)
        self._reference_encoder: nn.Module | None = self._model.encoder
        self._encoder = self._make_encoder(device, device_options or {})
        self._model.encoder = self._encoder
        # the device holds the encoder's weights in its own layout now: openai-whisper's
        # fp32 encoder is kept only by a fallback that may need it (encode(reference=True)
        # loads it again from the checkpoint)
        self._reference_encoder = None
        self.decoder_kind = decoder
        self.short_window = short_window
        self.short_window_margin_s = SHORT_WINDOW_MARGIN_S
        self.short_window_min_s = SHORT_WINDOW_MIN_S
        self._fast = None
        if decoder in ("fast", "fast-fp32", "fast-loop"):
            from .devices.cpu_native import load_decoder_kernel
            from .model.fast_decoder import attach_fast_decoder

            kernel = load_decoder_kernel() if decoder_quant == "none" and decoder != "fast-fp32" else None
            # fp16_only: the decoder's matrices held once, as the kernel's fp16 copies
            self._fast = attach_fast_decoder(self._model, quant=decoder_quant, kernel=kernel, fp16_only=True)
            if decoder == "fast-loop":  # fp16 products, one kernel call per product
                self._fast.step_params = None
            # the cross keys/values by bf16 products where the encoder's are bf16
            self._fast.cross_bf16 = getattr(self._encoder.device, "precision", "fp32") == "bf16"
        elif decoder != "openai":
            raise ValueError(f"unknown decoder {decoder!r}: {', '.join(DECODERS)}")
        release_freed_memory()

    def _make_encoder(self, device: str, options: dict[str, Any]) -> TiledEncoder:
        """Our encoder on ``device``; a device that can't start (no hardware, kernels not
        built for these shapes, a bad xclbin) is reported and replaced by cpu."""
        n_head = self._model.dims.n_audio_head
        if device != "cpu":
            try:
                dev: Device = create_device(device, self.recorder, **options)
                return TiledEncoder(
                    self._reference_encoder, n_head, dev,
                    fallback=lambda: create_device("cpu", self.recorder), on_fallback=self._notice,
                )
            except DeviceError as exc:
                self._notice(f"device {device!r} could not start ({exc}); using 'cpu'")
        cpu_options = options if device == "cpu" else {}
        return TiledEncoder(self._reference_encoder, n_head, create_device("cpu", self.recorder, **cpu_options))

    # -- info ----------------------------------------------------------------------------
    @property
    def device_name(self) -> str:
        return self._encoder.device.name

    @property
    def is_multilingual(self) -> bool:
        return bool(self._model.is_multilingual)

    @property
    def n_mels(self) -> int:
        return int(self._model.dims.n_mels)

    @property
    def windows_encoded(self) -> int:
        """30 s windows (or trimmed windows) our encoder has run since the engine loaded."""
        return self._encoder.windows_done

    @property
    def decoder_weight_format(self) -> str:
        """``fp16`` when the fast decoder's per-token products read fp16 weight copies."""
        return self._fast.weight_format if self._fast is not None else "fp32"

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        if self._on_notice is not None:
            self._on_notice(message)

    # -- the job context -------------------------------------------------------------------
    @contextmanager
    def job(self, ctx: JobContext) -> Iterator[None]:
        """The encoder runs the calls inside under ``ctx`` (stop request, trimming); the
        fast decoder gets it through :meth:`decode_mel`'s argument."""
        with self._encoder.job(ctx):
            yield

    def _inference(self, ctx: JobContext, int8: bool = False) -> Any:
        return self._fast.inference_factory(ctx, int8) if self._fast is not None else None

    def decode_mel(self, mel: torch.Tensor, options: whisper.DecodingOptions, ctx: JobContext) -> Any:
        """openai-whisper's ``decode`` of one window (or a batch) on this engine."""
        return whisper_loop.decode(self._model, mel, options, self._inference(ctx))

    def detect_language(self, mel: torch.Tensor) -> str:
        """The most likely language of ``mel[n_mels, frames]`` (any window length)."""
        from whisper.tokenizer import get_tokenizer

        tok = get_tokenizer(self._model.is_multilingual, num_languages=self._model.num_languages)
        with torch.no_grad():
            features = self._encoder(mel[None])
            logits = self._model.logits(torch.tensor([[tok.sot]]), features)[0, 0]
        ids = list(tok.all_language_tokens)
        return tok.all_language_codes[int(torch.argmax(logits[ids]))]

    # -- jobs ----------------------------------------------------------------------------
    def transcribe(
        self,
        audio: np.ndarray | str | Path,
        options: TranscribeOptions | None = None,
        *,
        source: str | None = None,
        on_progress: ProgressFn | None = None,
        on_segment: SegmentFn | None = None,
        should_stop: Callable[[], bool] | None = None,
        between_windows: Callable[[], None] | None = None,
    ) -> TranscriptResult:
        """Transcribe one file or 16 kHz mono float32 array.

        Raises :class:`~npu_whisper_app.audio.decode.AudioError` for unreadable files.
        A cancelled job returns the segments finished so far with ``cancelled=True``.
        """
        options = options or TranscribeOptions()
        if options.batched is None:
            duration = len(audio) / SAMPLE_RATE if isinstance(audio, np.ndarray) else audio_duration(audio)
            options = replace(options, batched=options.batched_for(duration))
        if options.batched:
            return self._transcribe_batched(audio, options, source, on_progress, on_segment, should_stop, between_windows)
        if not isinstance(audio, np.ndarray):
            source = source or str(audio)
            audio = load_audio(audio)
        source = source or "<audio>"
        duration = len(audio) / SAMPLE_RATE
        mark = self._job_mark()
        done_segments: list[dict] = []

        def collect(seg: dict) -> None:
            done_segments.append(seg)
            if on_segment is not None:
                on_segment(seg)

        ctx = JobContext(
            should_stop=should_stop, trim=self._trim(options), on_progress=on_progress,
            on_segment=collect, between_windows=between_windows,
        )
        cancelled = False
        start = time.perf_counter()
        try:
            if is_silent(audio):
                result = {"text": "", "segments": [], "language": options.language or ("en" if not self.is_multilingual else None)}
            else:
                with torch.inference_mode(), self.job(ctx):
                    result = whisper_loop.transcribe(
                        self._model, whisper_loop.ArrayMel(audio, self.n_mels), ctx=ctx,
                        make_inference=self._inference(ctx), **options.whisper_kwargs(self.is_multilingual),
                    )
                result = drop_silent_segments(result, audio)
        except Cancelled:
            cancelled = True
            texts = "".join(s.get("text", "") for s in done_segments)
            result = {"text": texts, "segments": done_segments, "language": options.language}
        finally:
            self.recorder.flush()
        return self._job_result(source, result, duration, time.perf_counter() - start, mark, cancelled)

    def _count_encoder(self, batch: list[TimingEvent]) -> None:
        """Encoder time of a batch of dispatches (attention tiles run on several threads:
        their wall time, not their sum)."""
        self._encoder_ns += sum(e.end_ns - e.start_ns for e in batch if e.op != "attention")
        self._encoder_ns += _wall_ns(e for e in batch if e.op == "attention")

    def _job_mark(self) -> tuple[int, int, int]:
        """Where a job starts: events kept, notices, encoder time so far."""
        return len(self.recorder.events), len(self.notices), self._encoder_ns

    def _job_result(
        self, source: str, result: dict, duration: float, elapsed: float, mark: tuple[int, int, int], cancelled: bool
    ) -> TranscriptResult:
        """A job's result with the timing events (where the recorder keeps them) and
        notices it added, and its encoder time."""
        first_event, notices_before, encoder_before = mark
        events = self.recorder.events[first_event:]
        encoder_ns = self._encoder_ns - encoder_before
        return TranscriptResult(
            source=source, result=result, duration_s=duration, elapsed_s=elapsed, encoder_s=encoder_ns / 1e9,
            device=self.device_name, model=self.model_name, events=list(events), notices=self.notices[notices_before:],
            cancelled=cancelled,
        )

    def transcribe_batched_many(
        self,
        inputs: list[np.ndarray | str | Path],
        options: TranscribeOptions | None = None,
        *,
        on_progress: ProgressFn | None = None,
        on_segment: SegmentFn | None = None,
        on_file_segment: Callable[[int, dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        between_windows: Callable[[], None] | None = None,
        stats: Any = None,
    ) -> list[dict]:
        """Several recordings (arrays or paths, read forward and never held whole) in the
        batched long-form mode, their chunks pooled into batches; one openai-whisper
        result dict per input. Raises :class:`~npu_whisper_app.jobs.Cancelled`."""
        from .longform import transcribe_batched_many

        options = options or TranscribeOptions()
        def after_batch() -> None:
            self._after_batch()
            if between_windows is not None:  # the app's owner thread runs waiting dictation decodes here
                between_windows()

        ctx = JobContext(should_stop=should_stop, on_progress=on_progress, on_segment=on_segment, between_windows=after_batch)
        with torch.inference_mode(), self.job(ctx):
            return transcribe_batched_many(
                self._model, list(inputs), options, ctx, batch_size=options.batch_size, first_batch_size=options.first_batch_size,
                on_file_segment=on_file_segment,
                stats=stats, make_inference=self._inference(ctx, int8=True),
            )

    def _after_batch(self) -> None:
        """Between two batches of the long-form mode: the finished batch's cross-attention
        copies go, and the heap space freed with them goes back to the system (else the
        next batch's encoder runs on top of them)."""
        if self._fast is not None:
            self._fast.forget_window()
        release_freed_memory()

    def decode_utterance(
        self,
        audio: np.ndarray,
        options: DecoderOptions | None = None,
        *,
        prompt: str | None = None,
        should_stop: Callable[[], bool] | None = None,
        partial: bool = False,
    ) -> Decoded:
        """Decode one dictated utterance (a partial, or its final): see ``utterance.py``.
        Raises :class:`~npu_whisper_app.jobs.Cancelled` when ``should_stop`` says so."""
        from .utterance import decode_utterance

        return decode_utterance(self, audio, options or DecoderOptions(), prompt=prompt, should_stop=should_stop, partial=partial)

    def _transcribe_batched(
        self, audio: np.ndarray | str | Path, options: TranscribeOptions, source: str | None,
        on_progress: ProgressFn | None, on_segment: SegmentFn | None, should_stop: Callable[[], bool] | None,
        between_windows: Callable[[], None] | None = None,
    ) -> TranscriptResult:
        """``transcribe`` in the batched long-form mode: a path is read forward a block
        at a time (memory bounded by a batch, not by the recording)."""
        source = source or (str(audio) if not isinstance(audio, np.ndarray) else "<audio>")
        mark = self._job_mark()
        done: list[dict] = []
        total = [0.0]

        def progress(d: float, t: float) -> None:
            total[0] = t
            if on_progress is not None:
                on_progress(d, t)

        def collect(seg: dict) -> None:
            done.append(seg)
            if on_segment is not None:
                on_segment(seg)

        cancelled = False
        start = time.perf_counter()
        stats = BatchedStats()
        try:
            result = self.transcribe_batched_many(
                [audio], options, on_progress=progress, on_segment=collect, should_stop=should_stop, between_windows=between_windows,
                stats=stats,
            )[0]
            if stats.chunks == 0:
                self._notice(
                    f"{source}: the voice-activity detector found no speech, so nothing was transcribed "
                    "(--batched False runs openai-whisper's loop over every 30 s window instead)"
                )
        except Cancelled:
            cancelled = True
            result = {"text": "".join(s.get("text", "") for s in done), "segments": done, "language": options.language}
        finally:
            self.recorder.flush()
        elapsed = time.perf_counter() - start
        duration = len(audio) / SAMPLE_RATE if isinstance(audio, np.ndarray) else total[0]
        return self._job_result(source, result, duration, elapsed, mark, cancelled)

    def _trim(self, options: TranscribeOptions) -> tuple[int, int] | None:
        """With ``short_window``, each window is encoded over its audio's frames plus a
        margin (at least ``short_window_min_s``) instead of Whisper's full 30 s: every
        clip under 30 s and the last window of longer audio. Off for word timestamps
        (their alignment reads cross-attention over the full window)."""
        if not (self.short_window or options.short_window) or options.word_timestamps:
            return None
        per_s = SAMPLE_RATE / whisper.audio.HOP_LENGTH
        return int(self.short_window_min_s * per_s), int(self.short_window_margin_s * per_s)

    # -- measuring ---------------------------------------------------------------------------
    def encode(self, mel: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        """Encode ``mel[B, n_mels, frames]`` afresh with our encoder on the device, or with
        openai-whisper's own encoder (``reference=True``): the encoder benchmark's calls."""
        if reference:
            if self._reference_encoder is None:  # benchmarks only: loaded when first asked
                from .model.resolve import load_source

                self._reference_encoder = load_source(self.source).encoder
            return self._reference_encoder(mel)
        self._encoder.forget_cached_window()
        return self._encoder(mel)

    def forget_cached_window(self) -> None:
        """The next window is encoded even if it equals the last (repeated benchmark rounds)."""
        self._encoder.forget_cached_window()

    def warm_up(self) -> None:
        """Do once, at load, the first-use work that would otherwise hold the GIL for a
        hundred ms or more at the start of the first job: the tokenizer's BPE tables, the
        mel filters and the first STFT, torch's kernels for the encoder and decoder."""
        from whisper.tokenizer import get_tokenizer

        get_tokenizer(self._model.is_multilingual, num_languages=self._model.num_languages)
        t = np.arange(2 * SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
        tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        self.transcribe(tone, TranscribeOptions(language="en", temperature=(0.0,)))
        self.recorder.clear()

    def close(self) -> None:
        self._encoder.device.close()


def _wall_ns(events: Any) -> int:
    """Wall time covered by possibly overlapping dispatches (attention runs on threads)."""
    spans = sorted((e.start_ns, e.end_ns) for e in events)
    total, cur_s, cur_e = 0, None, None
    for s, e in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total

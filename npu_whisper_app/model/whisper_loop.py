"""The one home for what we use of openai-whisper beyond its public calls.

* :func:`decode`: ``whisper.decode`` with our :class:`~.fast_decoder.FastInference` in
  place of its ``PyTorchInference``, for this call only (a ``DecodingTask`` subclass;
  nothing in openai-whisper's modules is replaced).
* :func:`transcribe`: openai-whisper's ``transcribe`` loop (30 s windows, timestamps,
  temperature fallback, previous-text prompt, word timestamps, hallucination skipping),
  ported line for line from openai-whisper 20250625 (MIT licence,
  ``whisper/transcribe.py``), with three differences: it reads log-mel windows from a
  :class:`~npu_whisper_app.jobs.MelSource` (so the whole recording's mel need not be in
  memory), it reports each window's segments and progress to the job's context and
  stops between windows when asked, and it decodes through :func:`decode`.

:data:`RELIED_ON` names the openai-whisper sources this module was written against, with
a fingerprint of each; ``tests/test_whisper_loop.py`` fails loudly when an installed
openai-whisper differs, so a change there is read before it silently changes our words.
"""

from __future__ import annotations

import hashlib
import inspect
import zlib
from collections.abc import Callable
from typing import Any, Optional

import numpy as np
import torch
import whisper
import whisper.decoding as wdec
from whisper.audio import FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE, log_mel_spectrogram, pad_or_trim
from whisper.decoding import DecodingOptions, DecodingResult
from whisper.timing import add_word_timestamps
from whisper.tokenizer import Tokenizer, get_tokenizer
from whisper.utils import exact_div, get_end

from ..jobs import IDLE, JobContext

#: (model, initial_token_length[, frames=each window's own frames]) -> Inference
InferenceFactory = Callable[..., Any]


# -- what we rely on -------------------------------------------------------------------------
def _fingerprint(obj: object) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


#: openai-whisper sources this module follows; their fingerprints when it was written
RELIED_ON: dict[str, str] = {
    # the loop ported in transcribe() below
    "whisper.transcribe.transcribe": "17a80c6abe976aa3",
    # builds self.inference = PyTorchInference(...) and hands it to the token decoder
    "whisper.decoding.DecodingTask.__init__": "37b1c4c81b20a592",
    # the Inference interface FastInference implements
    "whisper.decoding.Inference": "95af2018fc5d6528",
    # the batched mode's task: audio features given, run() slicing them per group
    "whisper.decoding.DecodingTask.run": "d6ed53ca148648fa",
    "whisper.decoding.DecodingTask._get_audio_features": "fff0168b936dd24f",
    "whisper.decoding.LogitFilter": "60d5d2e749dcee81",
    # holds the inference it was given (beam search re-orders its kv cache)
    "whisper.decoding.BeamSearchDecoder.__init__": "e6af42e7eed42f8a",
    # its steps after the encoder, in language_of_features()
    "whisper.decoding.detect_language": "201f5d7d8aa16b78",
}


def relied_on_now() -> dict[str, str]:
    """The fingerprints of :data:`RELIED_ON`'s sources in the installed openai-whisper."""
    import importlib

    out = {}
    for name in RELIED_ON:
        parts = name.split(".")
        obj: Any = importlib.import_module(".".join(parts[:2]))
        for p in parts[2:]:
            obj = getattr(obj, p)
        out[name] = _fingerprint(obj)
    return out


# -- decode ------------------------------------------------------------------------------
class _Task(wdec.DecodingTask):
    """openai-whisper's decoding task with another ``Inference`` for this task only."""

    def __init__(self, model: Any, options: DecodingOptions, make_inference: InferenceFactory | None) -> None:
        super().__init__(model, options)
        if make_inference is not None:
            self.inference = make_inference(model, len(self.initial_tokens))
            if hasattr(self.decoder, "inference"):  # beam search keeps its own reference
                self.decoder.inference = self.inference


@torch.no_grad()
def decode(
    model: Any, mel: torch.Tensor, options: DecodingOptions, make_inference: InferenceFactory | None = None
) -> DecodingResult | list[DecodingResult]:
    """``whisper.decode`` (one mel ``[n_mels, frames]`` or a batch), with
    ``make_inference`` building the token-to-logits step when given."""
    single = mel.ndim == 2
    if single:
        mel = mel.unsqueeze(0)
    result = _Task(model, options, make_inference).run(mel)
    return result[0] if single else result


# -- decoding chunks already encoded (the batched long-form mode) ----------------------------
class StopLoops(wdec.LogitFilter):
    """Ends a row whose text so far already fails the compression-ratio rule (a
    repetition loop): every few tokens, a row with ``min_tokens`` text tokens whose
    text compresses more than ``threshold`` gets end-of-text as its only choice. Its
    result then fails the same rule and falls back to the next temperature (or, at the
    last one, stops there) instead of holding the whole batch for 224 tokens."""

    def __init__(self, tokenizer: Tokenizer, sample_begin: int, threshold: float, every: int = 8, min_tokens: int = 40) -> None:
        self.tokenizer = tokenizer
        self.sample_begin = sample_begin
        self.threshold = threshold
        self.every = every
        self.min_tokens = min_tokens
        self.stopped = 0

    def apply(self, logits: torch.Tensor, tokens: torch.Tensor) -> None:
        n = tokens.shape[1] - self.sample_begin
        if n < self.min_tokens or n % self.every:
            return
        eot = self.tokenizer.eot
        for row in range(tokens.shape[0]):
            seq = tokens[row, self.sample_begin :]
            if seq[-1].item() == eot:
                continue
            text = self.tokenizer.decode([t for t in seq.tolist() if t < eot])
            if compression_ratio(text) > self.threshold:
                logits[row] = -np.inf
                logits[row, eot] = 0.0
                self.stopped += 1


class _FeaturesTask(wdec.DecodingTask):
    """openai-whisper's DecodingTask on audio features already encoded (trimmed windows
    have fewer than 1500 frames, which its own check would send to the encoder again),
    through the fast decoder where the model carries one."""

    def __init__(
        self, model: Any, options: wdec.DecodingOptions, stop_loops: float | None = None, make_inference: InferenceFactory | None = None,
        frames: list[int] | None = None,
    ) -> None:
        super().__init__(model, options)
        self.stop_loops = None
        if stop_loops is not None:
            self.stop_loops = StopLoops(self.tokenizer, self.sample_begin, stop_loops)
            self.logit_filters.append(self.stop_loops)
        if make_inference is not None:
            extra = {} if frames is None else {"frames": frames}
            self.inference = make_inference(model, len(self.initial_tokens), **extra)
            if hasattr(self.decoder, "inference"):  # beam search keeps its own reference
                self.decoder.inference = self.inference

    def _get_audio_features(self, mel: torch.Tensor) -> torch.Tensor:
        # run() is given the features. With several windows and n_group > 1 (best-of or
        # beams) run() slices ``audio_features[::n_group]`` as if they were repeated per
        # group (openai-whisper only ever decodes one window): repeat them so it holds
        return mel.repeat_interleave(self.n_group, 0) if self._repeated(mel) else mel

    def _repeated(self, mel: torch.Tensor) -> bool:
        return self.n_group > 1 and mel.shape[0] > 1

    def _detect_language(self, audio_features: torch.Tensor, tokens: torch.Tensor):  # type: ignore[override]
        # one language per window, not per repeated row (the language is always given)
        if self.n_group > 1 and audio_features.shape[0] == tokens.shape[0] * self.n_group > self.n_group:
            audio_features = audio_features[:: self.n_group]
        return super()._detect_language(audio_features, tokens)


@torch.no_grad()
def language_of_features(model: Any, features: torch.Tensor, tokenizer: Tokenizer) -> dict[str, float]:
    """openai-whisper's ``detect_language`` on one window's encoded features
    (``[1, T, D]``). Its own call tells features from a mel by their shape, so a trimmed
    window's features (T under 1500) would be encoded again as if they were a mel."""
    x = torch.tensor([[tokenizer.sot]] * features.shape[0])
    logits = model.logits(x, features)[:, 0]
    mask = torch.ones(logits.shape[-1], dtype=torch.bool)
    mask[list(tokenizer.all_language_tokens)] = False
    logits[:, mask] = -np.inf
    probs = logits.softmax(dim=-1)
    return {c: probs[0, j].item() for j, c in zip(tokenizer.all_language_tokens, tokenizer.all_language_codes)}


@torch.no_grad()
def decode_features(
    model: Any, features: torch.Tensor, options: DecodingOptions, make_inference: InferenceFactory | None = None,
    stop_loops: float | None = None, frames: list[int] | None = None,
) -> tuple[list[DecodingResult], int]:
    """Decode ``features[B, T, D]`` (windows already encoded, any T) as one batch; with
    ``stop_loops``, rows whose text already compresses past it are ended early. Returns
    the results and how many rows were ended so. ``frames``: each window's own frames
    where they differ (zero-padded to T; needs ``make_inference``, whose step masks them)."""
    if frames is not None and make_inference is None and min(frames) < features.shape[1]:
        raise ValueError("windows of different lengths need the fast decoder (make_inference)")
    task = _FeaturesTask(model, options, stop_loops, make_inference, frames)
    out = task.run(features)
    return out, (task.stop_loops.stopped if task.stop_loops is not None else 0)


# -- mel sources ---------------------------------------------------------------------------
class ArrayMel:
    """The log-mel of an array held in memory, as openai-whisper computes it for
    ``transcribe`` (30 s of zero samples appended, so the last window is exact)."""

    def __init__(self, audio: np.ndarray | torch.Tensor, n_mels: int) -> None:
        self._mel = log_mel_spectrogram(audio, n_mels, padding=N_SAMPLES)
        self.n_frames = self._mel.shape[-1] - N_FRAMES

    def frames(self, start: int, end: int) -> torch.Tensor:
        return self._mel[:, start:end]


# -- transcribe ------------------------------------------------------------------------------
def transcribe(
    model: Any,
    mel_source: Any,
    *,
    ctx: JobContext = IDLE,
    make_inference: InferenceFactory | None = None,
    temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    compression_ratio_threshold: Optional[float] = 2.4,
    logprob_threshold: Optional[float] = -1.0,
    no_speech_threshold: Optional[float] = 0.6,
    condition_on_previous_text: bool = True,
    initial_prompt: Optional[str] = None,
    carry_initial_prompt: bool = False,
    word_timestamps: bool = False,
    prepend_punctuations: str = "\"'“¿([{-",
    append_punctuations: str = "\"'.。,，!！?？:：”)]}、",
    clip_timestamps: str | list[float] = "0",
    hallucination_silence_threshold: Optional[float] = None,
    **decode_options: Any,
) -> dict:
    """openai-whisper's ``transcribe`` over ``mel_source`` (see the module docstring).

    After each window: its segments go to ``ctx.on_segment``, progress (seconds done,
    seconds total) to ``ctx.on_progress``, then ``ctx.check_stop()`` (raises
    :class:`~npu_whisper_app.jobs.Cancelled`) and ``ctx.between_windows()``."""
    decode_options.pop("verbose", None)
    decode_options["fp16"] = False  # our encoder and decoder compute in fp32 on the host
    dtype = torch.float32
    content_frames = int(mel_source.n_frames)
    content_duration = float(content_frames * HOP_LENGTH / SAMPLE_RATE)

    def window(start: int, size: int) -> torch.Tensor:
        m = mel_source.frames(start, start + size)
        m = torch.as_tensor(m)
        return pad_or_trim(m, N_FRAMES).to(model.device).to(dtype)

    if decode_options.get("language", None) is None:
        if not model.is_multilingual:
            decode_options["language"] = "en"
        else:
            _, probs = model.detect_language(window(0, min(N_FRAMES, content_frames)))
            decode_options["language"] = max(probs, key=probs.get)

    language: str = decode_options["language"]
    task: str = decode_options.get("task", "transcribe")
    tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language, task=task)

    if isinstance(clip_timestamps, str):
        clip_timestamps = [float(ts) for ts in (clip_timestamps.split(",") if clip_timestamps else [])]
    seek_points: list[int] = [round(ts * FRAMES_PER_SECOND) for ts in clip_timestamps]
    if len(seek_points) == 0:
        seek_points.append(0)
    if len(seek_points) % 2 == 1:
        seek_points.append(content_frames)
    seek_clips: list[tuple[int, int]] = list(zip(seek_points[::2], seek_points[1::2]))

    punctuation = "\"'“¿([{-\"'.。,，!！?？:：”)]}、"

    def decode_with_fallback(segment: torch.Tensor) -> DecodingResult:
        temperatures = [temperature] if isinstance(temperature, (int, float)) else temperature
        decode_result = None
        for t in temperatures:
            kwargs = {**decode_options}
            if t > 0:
                kwargs.pop("beam_size", None)
                kwargs.pop("patience", None)
            else:
                kwargs.pop("best_of", None)
            options = DecodingOptions(**kwargs, temperature=t)
            decode_result = decode(model, segment, options, make_inference)
            needs_fallback = False
            if compression_ratio_threshold is not None and decode_result.compression_ratio > compression_ratio_threshold:
                needs_fallback = True  # too repetitive
            if logprob_threshold is not None and decode_result.avg_logprob < logprob_threshold:
                needs_fallback = True  # average log probability is too low
            if (
                no_speech_threshold is not None
                and decode_result.no_speech_prob > no_speech_threshold
                and logprob_threshold is not None
                and decode_result.avg_logprob < logprob_threshold
            ):
                needs_fallback = False  # silence
            if not needs_fallback:
                break
        return decode_result

    clip_idx = 0
    seek = seek_clips[clip_idx][0]
    input_stride = exact_div(N_FRAMES, model.dims.n_audio_ctx)  # mel frames per output token: 2
    time_precision = input_stride * HOP_LENGTH / SAMPLE_RATE  # time per output token: 0.02 (seconds)
    all_tokens: list[int] = []
    all_segments: list[dict] = []
    prompt_reset_since = 0

    remaining_prompt_length = model.dims.n_text_ctx // 2 - 1
    if initial_prompt is not None:
        initial_prompt_tokens = tokenizer.encode(" " + initial_prompt.strip())
        all_tokens.extend(initial_prompt_tokens)
        remaining_prompt_length -= len(initial_prompt_tokens)
    else:
        initial_prompt_tokens = []

    def new_segment(*, start: float, end: float, tokens: torch.Tensor, result: DecodingResult) -> dict:
        tokens = tokens.tolist()
        text_tokens = [token for token in tokens if token < tokenizer.eot]
        return {
            "seek": seek,
            "start": start,
            "end": end,
            "text": tokenizer.decode(text_tokens),
            "tokens": tokens,
            "temperature": result.temperature,
            "avg_logprob": result.avg_logprob,
            "compression_ratio": result.compression_ratio,
            "no_speech_prob": result.no_speech_prob,
        }

    def report(previous_seek: int, first_new: int) -> None:
        """Ours: the window's segments and the progress go to the job, then stop if asked."""
        if ctx.on_segment is not None:
            for seg in all_segments[first_new:]:
                ctx.on_segment(dict(seg))
        if ctx.on_progress is not None:
            ctx.on_progress(min(content_frames, seek) / FRAMES_PER_SECOND, content_frames / FRAMES_PER_SECOND)
        ctx.check_stop()
        if ctx.between_windows is not None:
            ctx.between_windows()

    last_speech_timestamp = 0.0
    while clip_idx < len(seek_clips):
        seek_clip_start, seek_clip_end = seek_clips[clip_idx]
        if seek < seek_clip_start:
            seek = seek_clip_start
        if seek >= seek_clip_end:
            clip_idx += 1
            if clip_idx < len(seek_clips):
                seek = seek_clips[clip_idx][0]
            continue
        time_offset = float(seek * HOP_LENGTH / SAMPLE_RATE)
        window_end_time = float((seek + N_FRAMES) * HOP_LENGTH / SAMPLE_RATE)
        segment_size = min(N_FRAMES, content_frames - seek, seek_clip_end - seek)
        mel_segment = window(seek, segment_size)
        segment_duration = segment_size * HOP_LENGTH / SAMPLE_RATE

        if carry_initial_prompt:
            nignored = max(len(initial_prompt_tokens), prompt_reset_since)
            remaining_prompt = all_tokens[nignored:][-remaining_prompt_length:]
            decode_options["prompt"] = initial_prompt_tokens + remaining_prompt
        else:
            decode_options["prompt"] = all_tokens[prompt_reset_since:]

        result: DecodingResult = decode_with_fallback(mel_segment)
        tokens = torch.tensor(result.tokens)

        if no_speech_threshold is not None:
            should_skip = result.no_speech_prob > no_speech_threshold
            if logprob_threshold is not None and result.avg_logprob > logprob_threshold:
                should_skip = False
            if should_skip:
                previous_seek = seek
                seek += segment_size  # fast-forward to the next segment boundary
                report(previous_seek, len(all_segments))
                continue

        previous_seek = seek
        current_segments: list[dict] = []

        def word_anomaly_score(word: dict) -> float:
            probability = word.get("probability", 0.0)
            duration = word["end"] - word["start"]
            score = 0.0
            if probability < 0.15:
                score += 1.0
            if duration < 0.133:
                score += (0.133 - duration) * 15
            if duration > 2.0:
                score += duration - 2.0
            return score

        def is_segment_anomaly(segment: Optional[dict]) -> bool:
            if segment is None or not segment["words"]:
                return False
            words = [w for w in segment["words"] if w["word"] not in punctuation]
            words = words[:8]
            score = sum(word_anomaly_score(w) for w in words)
            return score >= 3 or score + 0.01 >= len(words)

        def next_words_segment(segments: list[dict]) -> Optional[dict]:
            return next((s for s in segments if s["words"]), None)

        timestamp_tokens: torch.Tensor = tokens.ge(tokenizer.timestamp_begin)
        single_timestamp_ending = timestamp_tokens[-2:].tolist() == [False, True]

        consecutive = torch.where(timestamp_tokens[:-1] & timestamp_tokens[1:])[0]
        consecutive.add_(1)
        if len(consecutive) > 0:
            slices = consecutive.tolist()
            if single_timestamp_ending:
                slices.append(len(tokens))
            last_slice = 0
            for current_slice in slices:
                sliced_tokens = tokens[last_slice:current_slice]
                start_timestamp_pos = sliced_tokens[0].item() - tokenizer.timestamp_begin
                end_timestamp_pos = sliced_tokens[-1].item() - tokenizer.timestamp_begin
                current_segments.append(
                    new_segment(
                        start=time_offset + start_timestamp_pos * time_precision,
                        end=time_offset + end_timestamp_pos * time_precision,
                        tokens=sliced_tokens,
                        result=result,
                    )
                )
                last_slice = current_slice
            if single_timestamp_ending:
                seek += segment_size
            else:
                last_timestamp_pos = tokens[last_slice - 1].item() - tokenizer.timestamp_begin
                seek += last_timestamp_pos * input_stride
        else:
            duration = segment_duration
            timestamps = tokens[timestamp_tokens.nonzero().flatten()]
            if len(timestamps) > 0 and timestamps[-1].item() != tokenizer.timestamp_begin:
                last_timestamp_pos = timestamps[-1].item() - tokenizer.timestamp_begin
                duration = last_timestamp_pos * time_precision
            current_segments.append(new_segment(start=time_offset, end=time_offset + duration, tokens=tokens, result=result))
            seek += segment_size

        if word_timestamps:
            add_word_timestamps(
                segments=current_segments,
                model=model,
                tokenizer=tokenizer,
                mel=mel_segment,
                num_frames=segment_size,
                prepend_punctuations=prepend_punctuations,
                append_punctuations=append_punctuations,
                last_speech_timestamp=last_speech_timestamp,
            )
            if not single_timestamp_ending:
                last_word_end = get_end(current_segments)
                if last_word_end is not None and last_word_end > time_offset:
                    seek = round(last_word_end * FRAMES_PER_SECOND)

            if hallucination_silence_threshold is not None:
                threshold = hallucination_silence_threshold
                if not single_timestamp_ending:
                    last_word_end = get_end(current_segments)
                    if last_word_end is not None and last_word_end > time_offset:
                        remaining_duration = window_end_time - last_word_end
                        if remaining_duration > threshold:
                            seek = round(last_word_end * FRAMES_PER_SECOND)
                        else:
                            seek = previous_seek + segment_size

                first_segment = next_words_segment(current_segments)
                if first_segment is not None and is_segment_anomaly(first_segment):
                    gap = first_segment["start"] - time_offset
                    if gap > threshold:
                        seek = previous_seek + round(gap * FRAMES_PER_SECOND)
                        continue

                hal_last_end = last_speech_timestamp
                for si in range(len(current_segments)):
                    segment = current_segments[si]
                    if not segment["words"]:
                        continue
                    if is_segment_anomaly(segment):
                        next_segment = next_words_segment(current_segments[si + 1 :])
                        if next_segment is not None:
                            hal_next_start = next_segment["words"][0]["start"]
                        else:
                            hal_next_start = time_offset + segment_duration
                        silence_before = (
                            segment["start"] - hal_last_end > threshold
                            or segment["start"] < threshold
                            or segment["start"] - time_offset < 2.0
                        )
                        silence_after = (
                            hal_next_start - segment["end"] > threshold
                            or is_segment_anomaly(next_segment)
                            or window_end_time - segment["end"] < 2.0
                        )
                        if silence_before and silence_after:
                            seek = round(max(time_offset + 1, segment["start"]) * FRAMES_PER_SECOND)
                            if content_duration - segment["end"] < threshold:
                                seek = content_frames
                            current_segments[si:] = []
                            break
                    hal_last_end = segment["end"]

            last_word_end = get_end(current_segments)
            if last_word_end is not None:
                last_speech_timestamp = last_word_end

        for segment in current_segments:
            if segment["start"] == segment["end"] or segment["text"].strip() == "":
                segment["text"] = ""
                segment["tokens"] = []
                segment["words"] = []

        first_new = len(all_segments)
        all_segments.extend([{"id": i, **segment} for i, segment in enumerate(current_segments, start=len(all_segments))])
        all_tokens.extend([token for segment in current_segments for token in segment["tokens"]])

        if not condition_on_previous_text or result.temperature > 0.5:
            prompt_reset_since = len(all_tokens)

        report(previous_seek, first_new)

    return dict(
        text=tokenizer.decode(all_tokens[len(initial_prompt_tokens) :]),
        segments=all_segments,
        language=language,
    )


def compression_ratio(text: str) -> float:
    """openai-whisper's gzip compression ratio of a text (its loop-detection rule)."""
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


__all__ = [
    "ArrayMel", "RELIED_ON", "StopLoops", "add_word_timestamps", "compression_ratio", "decode", "decode_features",
    "language_of_features", "relied_on_now", "transcribe", "whisper",
]

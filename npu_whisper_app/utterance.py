"""Decode one utterance (a short 16 kHz array): the engine's operation behind live
dictation's partials and finals (``Engine.decode_utterance``).

Window length (``DecoderOptions.audio_ctx``):

* ``"full"``: the utterance is zero-padded to Whisper's 30 s window (3000 mel frames,
  1500 encoder frames), exactly as ``whisper.transcribe`` does.
* ``"fit"`` (default): the utterance is zero-padded to the next whole second past
  ``fit_margin_s`` of trailing silence (at least ``fit_min_s``), and the encoder sees only
  that many frames (the positional embedding truncated to match; attention still covers
  every frame of the shorter window). A 3 s utterance costs a ~12 s encoder pass, not 30 s.

The final decode (``DecoderOptions.final``):

* ``"transcribe"`` (default): the utterance transcribed exactly as a file is
  (``Engine.transcribe``: the 30 s window, timestamp tokens, temperature fallback). With
  no previous-text prompt (the dictation default) every eval-dev utterance reads word for
  word as its file transcribed alone. It needs only 64 ms of trailing pad.
* ``"window"``: the partials' decode (``audio_ctx`` window, no timestamp tokens), about
  0.15 s sooner, with the clips' WER but other words where Whisper base hesitates; it
  needs the 200 ms trailing pad.

No invented text: what reaches the decoder is dropped when Whisper itself says it is not
speech (``no_speech_prob >= no_speech_threshold``), guesses (``avg_logprob <
logprob_threshold``) or loops (gzip compression ratio above the threshold, or a block of
3+ words repeated at once).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
import whisper
from whisper.audio import N_SAMPLES

from .audio import SAMPLE_RATE
from .jobs import Cancelled, JobContext
from .live.decoder import Decoded, DecoderOptions, repeats_block

if TYPE_CHECKING:
    from .pipeline import Engine


def language_for(engine: Engine, options: DecoderOptions) -> str | None:
    return "en" if not engine.is_multilingual else options.language


def window_samples(options: DecoderOptions, n: int) -> int:
    """Samples of the window an ``n``-sample utterance is decoded on (its ``audio_ctx``)."""
    if options.audio_ctx == "full":
        return N_SAMPLES
    secs = max(options.fit_min_s, math.ceil(n / SAMPLE_RATE + options.fit_margin_s))
    return min(N_SAMPLES, int(secs * SAMPLE_RATE))


def decode_utterance(
    engine: Engine,
    audio: np.ndarray,
    options: DecoderOptions,
    *,
    prompt: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    partial: bool = False,
) -> Decoded:
    """Decode one utterance. A fitted window whose result looks wrong (a repetition
    loop, the token cap reached, very low confidence) is decoded again on the full
    30 s window, as Whisper was trained; partials are not retried (they are shown
    only where two agree). Raises :class:`~npu_whisper_app.jobs.Cancelled`."""
    o = options
    t0 = time.perf_counter()
    audio = np.asarray(audio, np.float32)
    if prompt and o.max_prompt_chars:
        prompt = prompt[-o.max_prompt_chars :]
    ctx = JobContext(should_stop=should_stop)
    if not partial and o.final == "transcribe":
        return _decode_as_file(engine, audio, o, prompt, ctx, t0)
    target = window_samples(o, len(audio))
    r, capped = _decode_window(engine, audio, o, target, prompt, ctx)
    retried = False
    suspicious = capped or r.compression_ratio > o.compression_ratio_threshold or r.avg_logprob < o.logprob_threshold or repeats_block(r.text)
    if target < N_SAMPLES and not partial and suspicious:
        target = N_SAMPLES
        r, capped = _decode_window(engine, audio, o, target, prompt, ctx)
        retried = True
    return judged(o, r.text, r.no_speech_prob, r.avg_logprob, r.compression_ratio, capped, target / SAMPLE_RATE, t0, retried)


def judged(
    o: DecoderOptions, text: str, no_speech_prob: float, avg_logprob: float, compression_ratio: float,
    capped: bool, window_s: float, t0: float, retried: bool = False,
) -> Decoded:
    """The decode's text, or none with the reason it is judged not to be speech."""
    text = text.strip()
    dropped = None
    if not text:
        dropped = "empty"
    elif no_speech_prob >= o.no_speech_threshold:
        dropped = f"no speech (p={no_speech_prob:.2f})"
    elif avg_logprob < o.logprob_threshold:
        dropped = f"low confidence (avg logprob {avg_logprob:.2f})"
    elif compression_ratio > o.compression_ratio_threshold or capped:
        dropped = f"repetitive (compression ratio {compression_ratio:.1f})"
    return Decoded(
        text=text if dropped is None else "",
        no_speech_prob=float(no_speech_prob),
        avg_logprob=float(avg_logprob),
        compression_ratio=float(compression_ratio),
        window_s=window_s,
        elapsed_s=time.perf_counter() - t0,
        dropped=dropped,
        retried=retried,
    )


def _decode_as_file(engine: Engine, audio: np.ndarray, o: DecoderOptions, prompt: str | None, ctx: JobContext, t0: float) -> Decoded:
    """The utterance transcribed as a file is (``final="transcribe"``)."""
    from whisper.utils import compression_ratio

    from .pipeline import TranscribeOptions

    opts = TranscribeOptions(
        language=language_for(engine, o),
        initial_prompt=prompt or None,
        beam_size=o.beam_size,
        compression_ratio_threshold=o.compression_ratio_threshold,
        logprob_threshold=o.logprob_threshold,
        no_speech_threshold=o.no_speech_threshold,
        batched=False,  # openai-whisper's loop, as the exact-words claim was measured
    )
    res = engine.transcribe(audio, opts, should_stop=ctx.should_stop)
    if res.cancelled:
        raise Cancelled()
    segs = res.result.get("segments", [])
    text = str(res.result.get("text", ""))
    if not segs:
        return judged(o, "", 1.0, 0.0, 0.0, False, 30.0, t0)
    # whisper judges no-speech per 30 s window; an utterance is speech if any window is
    no_speech = min(float(s["no_speech_prob"]) for s in segs)
    n_tok = [max(1, len(s.get("tokens", ()))) for s in segs]
    avg_logprob = sum(float(s["avg_logprob"]) * n for s, n in zip(segs, n_tok)) / sum(n_tok)
    ratio = compression_ratio(text.strip()) if text.strip() else 0.0
    return judged(o, text, no_speech, avg_logprob, ratio, False, 30.0 * (1 + len(audio) // N_SAMPLES), t0)


def _decode_window(engine: Engine, audio: np.ndarray, o: DecoderOptions, target: int, prompt: str | None, ctx: JobContext):
    padded = whisper.pad_or_trim(audio[:target], target)
    mel = whisper.log_mel_spectrogram(padded, engine.n_mels)
    # a cap on tokens from the utterance's length (fast speech is < 6 tokens/s): a
    # repetition loop stops early instead of running to 224 tokens
    sample_len = int(min(224, 12 + 8 * len(audio) / SAMPLE_RATE))
    opts = whisper.DecodingOptions(
        task="transcribe",
        language=language_for(engine, o),
        without_timestamps=True,
        fp16=False,
        prompt=prompt or None,
        temperature=0.0,
        beam_size=o.beam_size,
        sample_len=sample_len,
    )
    # no_grad, not inference_mode: the cpu device's attention writes into a tensor from
    # pool threads, where inference mode (thread-local) is off
    with torch.no_grad(), engine.job(ctx):
        if opts.language is None:
            # whisper's own language detection takes a window that is not 1500 frames
            # long for a mel and would encode it again; detect here from the features
            # (the encoder keeps them, the decode below reuses them)
            opts = replace(opts, language=engine.detect_language(mel))
        r = engine.decode_mel(mel, opts, ctx)
    capped = len(r.tokens) >= sample_len
    return r, capped

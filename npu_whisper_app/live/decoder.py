"""Decode one utterance (a short 16 kHz array) with openai-whisper's ``decode`` on an
:class:`~npu_whisper_app.pipeline.Engine`'s model, whose encoder runs on our device.

Window length (``audio_ctx``):

* ``"full"``: the utterance is zero-padded to Whisper's 30 s window (3000 mel frames,
  1500 encoder frames), exactly as ``whisper.transcribe`` does. Every decode costs a
  full 30 s encoder pass.
* ``"fit"`` (default): the utterance is zero-padded to the next whole second past
  ``fit_margin_s`` of trailing silence, and the encoder sees only that many frames (the
  positional embedding truncated to match; attention still covers every frame of the
  shorter window). A 3 s utterance costs a ~4 s encoder pass instead of 30 s. The
  benchmark (``benchmarks/live_latency.py --audio-ctx full|fit``) measures the accuracy
  cost of this on eval-dev; see the README's "Live dictation" notes.

The final decode (``final``):

* ``"transcribe"`` (default): the utterance transcribed exactly as a file is
  (``Engine.transcribe``: the 30 s window, timestamp tokens, temperature fallback). With
  no previous-text prompt (the dictation default) every eval-dev utterance reads word for
  word as its file transcribed alone. It needs only 64 ms of trailing pad (the session
  picks it), and the 30 s window's encoder pass is 0.4-0.55 s on 2 cores; the README's
  "Live dictation" table has the latencies.
* ``"window"``: the partials' decode (``audio_ctx`` window, no timestamp tokens), about
  0.15 s sooner. It keeps the clips' WER (0.093), but Whisper base hears "clubs" as
  clubs, cloves, clothes or close depending on the window, so only 5-7 of 9 utterances
  read word for word as their file alone; it needs the 200 ms trailing pad.

No invented text: Whisper invents "Thank you." and the like on silence and noise. The
VAD keeps most of that from ever reaching the decoder; what does reach it is dropped
when Whisper itself says it is not speech: ``no_speech_prob >= no_speech_threshold``,
or ``avg_logprob < logprob_threshold`` (a guess), or a repetition loop
(gzip compression ratio above ``compression_ratio_threshold``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..audio import SAMPLE_RATE


@dataclass
class DecoderOptions:
    language: str | None = None
    audio_ctx: str = "fit"  # "fit" | "full": the partials' window (and the final's with final="window")
    final: str = "transcribe"  # "transcribe" | "window"
    fit_margin_s: float = 1.0
    # shorter windows make Whisper loop or drop words (no end of audio in sight); with the
    # previous text as prompt 8 s duplicated a whole utterance on eval-dev, 12 s did not
    fit_min_s: float = 12.0
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    max_prompt_chars: int = 200
    beam_size: int | None = None  # None: greedy (fastest)


@dataclass
class Decoded:
    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    window_s: float
    elapsed_s: float
    dropped: str | None = None  # why the text was judged not to be speech
    retried: bool = False  # the fitted window's result was rejected; decoded on 30 s


class Cancelled(Exception):
    pass


def repeats_block(text: str, min_words: int = 3) -> bool:
    """True when a run of >= ``min_words`` words follows itself at once ("a b c a b c"):
    the loop Whisper falls into when it cannot see the end of the audio. (People do
    repeat a word or two; three in a row, seldom.)"""
    import re

    words = [w for w in re.sub(r"[^\w' ]+", " ", text.lower()).split()]
    n = len(words)
    for k in range(min_words, n // 2 + 1):
        for i in range(0, n - 2 * k + 1):
            if words[i : i + k] == words[i + k : i + 2 * k]:
                return True
    return False


class WhisperUtteranceDecoder:
    """Decodes utterances on ``engine``. Call from one thread (the engine's)."""

    def __init__(self, engine, options: DecoderOptions | None = None) -> None:
        self.engine = engine
        self.options = options or DecoderOptions()
        self.model = engine.model

    @property
    def language(self) -> str | None:
        if not self.model.is_multilingual:
            return "en"
        return self.options.language

    def _detect_language(self, features) -> str:
        import torch
        from whisper.tokenizer import get_tokenizer

        tok = get_tokenizer(self.model.is_multilingual, num_languages=self.model.num_languages)
        with torch.no_grad():
            logits = self.model.logits(torch.tensor([[tok.sot]]), features)[0, 0]
        ids = list(tok.all_language_tokens)
        best = int(torch.argmax(logits[ids]))
        return tok.all_language_codes[best]

    def window_samples(self, n: int) -> int:
        from whisper.audio import N_SAMPLES

        if self.options.audio_ctx == "full":
            return N_SAMPLES
        secs = max(self.options.fit_min_s, math.ceil(n / SAMPLE_RATE + self.options.fit_margin_s))
        return min(N_SAMPLES, int(secs * SAMPLE_RATE))

    def decode(
        self,
        audio: np.ndarray,
        prompt: str | None = None,
        should_stop: Callable[[], bool] | None = None,
        partial: bool = False,
    ) -> Decoded:
        """Decode one utterance. A fitted window whose result looks wrong (a repetition
        loop, the token cap reached, very low confidence) is decoded again on the full
        30 s window, as Whisper was trained; partials are not retried (they are shown
        only where two agree)."""
        o = self.options
        t0 = time.perf_counter()
        audio = np.asarray(audio, np.float32)
        if prompt and o.max_prompt_chars:
            prompt = prompt[-o.max_prompt_chars :]
        if not partial and o.final == "transcribe":
            return self._decode_as_file(audio, prompt, should_stop, t0)
        target = self.window_samples(len(audio))
        r, capped = self._decode_window(audio, target, prompt, should_stop)
        retried = False
        suspicious = capped or r.compression_ratio > o.compression_ratio_threshold or r.avg_logprob < o.logprob_threshold or repeats_block(r.text)
        if target < 480000 and not partial and suspicious:
            target = 480000
            r, capped = self._decode_window(audio, target, prompt, should_stop)
            retried = True
        return self._judged(r.text, r.no_speech_prob, r.avg_logprob, r.compression_ratio, capped, target / SAMPLE_RATE, t0, retried)

    def _judged(self, text: str, no_speech_prob: float, avg_logprob: float, compression_ratio: float, capped: bool, window_s: float, t0: float, retried: bool = False) -> Decoded:
        """The decode's text, or none with the reason it is judged not to be speech."""
        o = self.options
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

    def _decode_as_file(self, audio: np.ndarray, prompt: str | None, should_stop, t0: float) -> Decoded:
        """The utterance transcribed as a file is (``final="transcribe"``)."""
        from whisper.utils import compression_ratio

        from ..pipeline import TranscribeOptions

        o = self.options
        opts = TranscribeOptions(
            language=self.language,
            initial_prompt=prompt or None,
            beam_size=o.beam_size,
            compression_ratio_threshold=o.compression_ratio_threshold,
            logprob_threshold=o.logprob_threshold,
            no_speech_threshold=o.no_speech_threshold,
        )
        res = self.engine.transcribe(audio, opts, should_stop=should_stop)
        if res.cancelled:
            raise Cancelled()
        segs = res.result.get("segments", [])
        text = str(res.result.get("text", ""))
        if not segs:
            return self._judged("", 1.0, 0.0, 0.0, False, 30.0, t0)
        # whisper judges no-speech per 30 s window; an utterance is speech if any window is
        no_speech = min(float(s["no_speech_prob"]) for s in segs)
        n_tok = [max(1, len(s.get("tokens", ()))) for s in segs]
        avg_logprob = sum(float(s["avg_logprob"]) * n for s, n in zip(segs, n_tok)) / sum(n_tok)
        ratio = compression_ratio(text.strip()) if text.strip() else 0.0
        return self._judged(text, no_speech, avg_logprob, ratio, False, 30.0 * (1 + len(audio) // 480000), t0)

    def _decode_window(self, audio: np.ndarray, target: int, prompt: str | None, should_stop):
        import torch
        import whisper

        from ..model.encoder import Cancelled as EncoderCancelled

        o = self.options
        padded = whisper.pad_or_trim(audio[:target], target)
        mel = whisper.log_mel_spectrogram(padded, self.model.dims.n_mels)
        # a cap on tokens from the utterance's length (fast speech is < 6 tokens/s): a
        # repetition loop stops early instead of running to 224 tokens
        sample_len = int(min(224, 12 + 8 * len(audio) / SAMPLE_RATE))
        opts = whisper.DecodingOptions(
            task="transcribe",
            language=self.language,
            without_timestamps=True,
            fp16=False,
            prompt=prompt or None,
            temperature=0.0,
            beam_size=o.beam_size,
            sample_len=sample_len,
        )
        # polled between encoder dispatches and between decoded tokens
        stoppable = [x for x in (getattr(self.engine, "encoder", None), getattr(self.engine, "fast_decoder", None)) if x is not None]
        for x in stoppable:
            x.should_stop = should_stop
        try:
            # no_grad, not inference_mode: the cpu device's attention writes into a
            # tensor from pool threads, where inference mode (thread-local) is off
            with torch.no_grad():
                if opts.language is None:
                    # whisper's own language detection takes a window that is not 1500
                    # frames long for a mel and would encode it again; detect here from
                    # the features (the encoder keeps them, decode() below reuses them)
                    features = self.model.encoder(mel[None])
                    opts = replace(opts, language=self._detect_language(features))
                r = whisper.decode(self.model, mel, opts)
        except EncoderCancelled:
            raise Cancelled() from None
        finally:
            for x in stoppable:
                x.should_stop = None
        capped = len(r.tokens) >= sample_len
        return r, capped

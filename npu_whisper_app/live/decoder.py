"""What dictation asks of a decoder, and the options and result of one utterance's decode.

Live dictation depends on this small interface only: an object with
``decode(audio, prompt=None, should_stop=None, partial=False) -> Decoded``. The engine
does the decoding (``Engine.decode_utterance``, in ``npu_whisper_app/utterance.py``);
:class:`WhisperUtteranceDecoder` binds an engine (or the engine's owner thread, which
has the same call) to a set of :class:`DecoderOptions`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..jobs import Cancelled

__all__ = ["Cancelled", "Decoded", "DecoderOptions", "UtteranceDecoder", "WhisperUtteranceDecoder", "repeats_block"]


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


def repeats_block(text: str, min_words: int = 3) -> bool:
    """True when a run of >= ``min_words`` words follows itself at once ("a b c a b c"):
    the loop Whisper falls into when it cannot see the end of the audio. (People do
    repeat a word or two; three in a row, seldom.)"""
    words = [w for w in re.sub(r"[^\w' ]+", " ", text.lower()).split()]
    n = len(words)
    for k in range(min_words, n // 2 + 1):
        for i in range(0, n - 2 * k + 1):
            if words[i : i + k] == words[i + k : i + 2 * k]:
                return True
    return False


class UtteranceDecoder(Protocol):
    """What a :class:`~npu_whisper_app.live.dictation.DictationSession` decodes with."""

    options: DecoderOptions

    def decode(
        self, audio: np.ndarray, prompt: str | None = None, should_stop: Callable[[], bool] | None = None, partial: bool = False
    ) -> Decoded: ...


class WhisperUtteranceDecoder:
    """Decodes utterances with ``engine.decode_utterance`` (an ``Engine``, or the
    ``EngineHost`` that owns one on its thread) under these options."""

    def __init__(self, engine: Any, options: DecoderOptions | None = None) -> None:
        self.engine = engine
        self.options = options or DecoderOptions()

    def decode(
        self, audio: np.ndarray, prompt: str | None = None, should_stop: Callable[[], bool] | None = None, partial: bool = False
    ) -> Decoded:
        return self.engine.decode_utterance(audio, self.options, prompt=prompt, should_stop=should_stop, partial=partial)

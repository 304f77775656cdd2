"""The options of a file job (``Engine.transcribe``): openai-whisper's ``transcribe``
options with its CLI's names and meanings, and ours (the batched mode, its batch sizes, the
short window). Plain data; :mod:`.pipeline` re-exports it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: recordings this long or longer take the batched mode unless told otherwise: every
#: recording. It read closer to the references than openai-whisper's sequential loop on
#: the long-form set (3 and 5 minutes, where the loop loops) and on eval-dev's clips as
#: recorded, 40 dB down, with white noise, and with 5 s of silence before them (where the
#: loop invents text): README, ``--batched`` (benchmarks/modes_check.py)
BATCHED_AUTO_MIN_S = 0.0


@dataclass
class TranscribeOptions:
    """openai-whisper's ``transcribe`` options, with its CLI's names and meanings."""

    language: str | None = None
    task: str = "transcribe"
    temperature: tuple[float, ...] = DEFAULT_TEMPERATURES
    beam_size: int | None = None
    best_of: int | None = 5
    patience: float | None = None
    length_penalty: float | None = None
    suppress_tokens: str = "-1"
    initial_prompt: str | None = None
    carry_initial_prompt: bool = False
    condition_on_previous_text: bool = True
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    word_timestamps: bool = False
    prepend_punctuations: str = "\"'“¿([{-"
    append_punctuations: str = "\"'.。,，!！?？:：”)]}、"
    clip_timestamps: str = "0"
    hallucination_silence_threshold: float | None = None
    #: ours, not openai-whisper's: encode each window over its audio (see Engine._trim);
    #: the Engine's own ``short_window`` turns it on for every job
    short_window: bool = False
    #: ours: the batched long-form mode (``longform/``): the audio cut at pauses into
    #: chunks of at most 30 s, each encoded over its length, decoded ``batch_size`` at a
    #: time, no chunk conditioned on another's text. False: openai-whisper's sequential
    #: loop (openai-whisper's exact words). None (default): batched unless an option
    #: only the sequential loop has is set (see :meth:`batched_for`)
    batched: bool | None = None
    batch_size: int = 8
    #: ours: a smaller first batch in the batched mode (the app: 1, so that the first
    #: segments show as soon as the first chunk is decoded); None: ``batch_size``
    first_batch_size: int | None = None

    def batched_for(self, duration_s: float) -> bool:
        """Whether a recording of ``duration_s`` runs in the batched mode. Asked for
        explicitly, as asked; by default for recordings of ``BATCHED_AUTO_MIN_S`` or more
        (all), where it was measured at least as accurate as the sequential loop, and
        never with options only the sequential loop has (clip timestamps, the
        hallucination silence rule, a prompt carried into every window)."""
        if self.batched is not None:
            return self.batched
        sequential_only = self.clip_timestamps != "0" or self.hallucination_silence_threshold is not None or self.carry_initial_prompt
        return not sequential_only and duration_s >= BATCHED_AUTO_MIN_S

    def whisper_kwargs(self, multilingual: bool) -> dict[str, Any]:
        language = self.language
        if not multilingual:
            language = "en"
        kwargs: dict[str, Any] = dict(
            language=language,
            task=self.task,
            temperature=self.temperature,
            suppress_tokens=self.suppress_tokens,
            initial_prompt=self.initial_prompt,
            carry_initial_prompt=self.carry_initial_prompt,
            condition_on_previous_text=self.condition_on_previous_text,
            compression_ratio_threshold=self.compression_ratio_threshold,
            logprob_threshold=self.logprob_threshold,
            no_speech_threshold=self.no_speech_threshold,
            word_timestamps=self.word_timestamps,
            prepend_punctuations=self.prepend_punctuations,
            append_punctuations=self.append_punctuations,
            clip_timestamps=self.clip_timestamps,
            hallucination_silence_threshold=self.hallucination_silence_threshold,
            fp16=False,
            verbose=None,
        )
        if self.beam_size is not None:
            kwargs["beam_size"] = self.beam_size
            if self.patience is not None:
                kwargs["patience"] = self.patience
        if self.best_of is not None:
            kwargs["best_of"] = self.best_of
        if self.length_penalty is not None:
            kwargs["length_penalty"] = self.length_penalty
        return kwargs

"""Custom vocabulary (names, jargon) given to Whisper as its prompt.

Whisper spells a word it has seen in the prompt the way the prompt does ("Kubernetes",
"Nguyen"); the prompt is the conditioning text of openai-whisper's ``initial_prompt``.
It can also change other words (README: a prompt of previous text changed 7 of 9
eval-dev utterances), so the vocabulary is empty unless the user adds words.
"""

from __future__ import annotations

MAX_PROMPT_CHARS = 200  # the decoder keeps the last 200 characters of a prompt


def vocabulary_prompt(words: list[str]) -> str:
    words = [w.strip() for w in words if w and w.strip()]
    if not words:
        return ""
    prompt = "Glossary: " + ", ".join(words) + "."
    return prompt[-MAX_PROMPT_CHARS:]


class VocabularyDecoder:
    """Wraps an utterance decoder (``decode(audio, prompt=None, ...)``) so every decode
    gets the vocabulary after any prompt the session gives (previous text); the
    vocabulary comes last because a long prompt is cut from its start."""

    def __init__(self, decoder, words: list[str]) -> None:
        self.decoder = decoder
        self.prompt = vocabulary_prompt(words)

    def __getattr__(self, name: str):  # options, engine, ...: the wrapped decoder's
        return getattr(self.decoder, name)

    def decode(self, audio, prompt: str | None = None, *args, **kwargs):
        if self.prompt:
            prompt = f"{prompt} {self.prompt}" if prompt else self.prompt
        return self.decoder.decode(audio, prompt, *args, **kwargs)

"""Local-agreement stabilisation of partial hypotheses.

A partial hypothesis of the open utterance is re-decoded about once a second as audio
grows; its last words flicker. The words on which the last two hypotheses agree (their
longest common prefix, compared without case and punctuation) are *stable* and shown;
the stable prefix never shrinks within an utterance (once shown, a word stays until the
final text replaces the whole utterance).
"""

from __future__ import annotations

import re

_strip = re.compile(r"[^\w']+")


def _norm(word: str) -> str:
    return _strip.sub("", word.lower())


def common_prefix_len(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b):
        if _norm(x) != _norm(y):
            break
        n += 1
    return n


class LocalAgreement:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prev: list[str] | None = None
        self.stable: list[str] = []
        self.tail: list[str] = []

    def update(self, hypothesis: str) -> tuple[str, str]:
        """Add a new hypothesis; returns ``(stable_text, unstable_tail_text)``."""
        words = hypothesis.split()
        if self._prev is not None:
            n = common_prefix_len(self._prev, words)
            if n > len(self.stable) and common_prefix_len(self.stable, words) == len(self.stable):
                self.stable = words[:n]
        self._prev = words
        k = common_prefix_len(self.stable, words)
        self.tail = words[k:] if k == len(self.stable) else words[len(self.stable) :]
        return " ".join(self.stable), " ".join(self.tail)

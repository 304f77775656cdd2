"""Text of final utterances, made ready to insert where the user types.

* :class:`SpokenCommands` (off by default): words said for punctuation and layout
  ("comma", "period", "new line", ...) become the characters. Whisper writes them as
  words with punctuation of its own around them ("Hello, comma, world. Period."); that
  punctuation goes with the command.
* :class:`UtteranceJoiner`: consecutive utterances join as one text: a space between
  them (none after a new line), a capital letter after a sentence end, a new line, or at
  the very start; Whisper's own capitalisation is kept otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# spoken form -> text; longer forms first so "new paragraph" wins over "new"
DEFAULT_COMMANDS: dict[str, str] = {
    "new paragraph": "\n\n",
    "new line": "\n",
    "newline": "\n",
    "full stop": ".",
    "period": ".",
    "comma": ",",
    "question mark": "?",
    "exclamation mark": "!",
    "exclamation point": "!",
    "semicolon": ";",
    "colon": ":",
    "open quote": "\u201c",
    "close quote": "\u201d",
    "open parenthesis": "(",
    "close parenthesis": ")",
    "hyphen": "-",
}

_ATTACH_LEFT = set(".,?!;:)\u201d")  # no space before these
_ATTACH_RIGHT = set("(\u201c")  # no space after these
_SENTENCE_END = set(".?!")


@dataclass
class SpokenCommands:
    commands: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_COMMANDS))

    def __post_init__(self) -> None:
        forms = sorted(self.commands, key=len, reverse=True)
        words = "|".join(r"\s+".join(map(re.escape, f.split())) for f in forms)
        # a command with the punctuation Whisper put around it ("Hello, comma, world")
        self._pattern = re.compile(rf"([,.;:!?]*)\s*\b({words})\b[,.;:!?]*", re.IGNORECASE)

    def apply(self, text: str) -> str:
        """Replace the spoken commands in ``text`` by what they stand for."""
        pieces: list[str] = []
        pos = 0
        for m in self._pattern.finditer(text):
            pieces.append(text[pos : m.start()].rstrip() if m.start() > pos else "")
            form = " ".join(m.group(2).lower().split())
            symbol = self.commands[form]
            if symbol.strip() == "" and m.group(1):
                # "Fine. New line." - the period before a layout command was the speaker's
                pieces.append("\x00" + m.group(1)[-1] + "\x00")
            pieces.append("\x00" + symbol + "\x00")
            pos = m.end()
        if pos == 0:
            return text
        pieces.append(text[pos:])
        return _tidy("".join(pieces))


def _tidy(marked: str) -> str:
    """Spacing around the inserted characters (marked by NULs)."""
    out: list[str] = []
    parts = marked.split("\x00")
    for i, part in enumerate(parts):
        if i % 2:  # an inserted symbol
            while out and out[-1].endswith(" "):
                out[-1] = out[-1].rstrip(" ")
            if part in _ATTACH_RIGHT and out and out[-1] and not out[-1].endswith(("\n", " ")):
                out.append(" ")
            out.append(part)
            continue
        text = part
        prev = out[-1][-1:] if out and out[-1] else ""
        if prev:
            text = text.lstrip(" ")
            if text and prev not in "\n" and prev not in _ATTACH_RIGHT and text[0] not in _ATTACH_LEFT:
                text = " " + text
            if text.strip() and (prev in _SENTENCE_END or prev == "\n"):
                text = _capitalise(text)
        out.append(text)
    return "".join(out).strip(" ")


def _capitalise(text: str) -> str:
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
        if not (ch.isspace() or ch in "\"'\u201c("):
            return text
    return text


class UtteranceJoiner:
    """Turns each final utterance into the text to insert after what was inserted
    before (in this dictation session)."""

    def __init__(self, commands: SpokenCommands | None = None) -> None:
        self.commands = commands
        self._last = ""  # the tail of what was inserted so far

    def reset(self) -> None:
        self._last = ""

    def join(self, text: str) -> str:
        text = text.strip()
        if self.commands is not None:
            text = self.commands.apply(text)
        if not text:
            return ""
        prev = self._last[-1:]
        if not prev or prev == "\n" or prev in _SENTENCE_END:
            text = _capitalise(text)
        if prev and prev != "\n" and not prev.isspace() and text[0] not in _ATTACH_LEFT and text[0] != "\n":
            text = " " + text
        self._last = (self._last + text)[-16:]
        return text

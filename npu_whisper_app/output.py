"""Transcript files (txt, vtt, srt, tsv, json) through openai-whisper's own writers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from whisper.utils import get_writer

FORMATS = ("txt", "vtt", "srt", "tsv", "json")


def write_outputs(
    result: dict,
    audio_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    formats: list[str] | tuple[str, ...],
    word_options: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``result`` (openai-whisper's dict) next to each other as ``<stem>.<fmt>``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    opts = {k: v for k, v in (word_options or {}).items() if k in ("highlight_words", "max_line_width", "max_line_count", "max_words_per_line")}
    opts.setdefault("highlight_words", False)
    opts.setdefault("max_line_width", None)
    opts.setdefault("max_line_count", None)
    opts.setdefault("max_words_per_line", None)
    written = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}")
        writer = get_writer(fmt, str(out))
        writer(result, str(audio_path), opts)
        written.append(out / f"{Path(audio_path).stem}.{fmt}")
    return written


def format_text(result: dict, fmt: str, word_options: dict[str, Any] | None = None) -> str:
    """The file contents a writer would produce, as a string (for the GUI's export preview)."""
    import io

    writer = get_writer(fmt, ".")
    buf = io.StringIO()
    opts = {"highlight_words": False, "max_line_width": None, "max_line_count": None, "max_words_per_line": None}
    opts.update(word_options or {})
    writer.write_result(result, buf, opts)
    return buf.getvalue()

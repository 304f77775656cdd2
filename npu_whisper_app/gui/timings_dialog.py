"""The save dialog for a job's timings: our JSON or a Chrome trace / Perfetto file."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from ..profiling import timings_format

# file-dialog filter -> format for profiling.export_timings
TIMINGS_FILTERS: dict[str, str] = {
    "Timings JSON (*.json)": "json",
    "Chrome trace / Perfetto (*.trace.json)": "chrome",
}
TRACE_SUFFIX = ".trace.json"


def default_timings_name(source: str | Path, fmt: str = "json") -> str:
    """``talk.timings.json`` or ``talk.trace.json`` next to the source file."""
    suffix = TRACE_SUFFIX if fmt == "chrome" else ".timings.json"
    return str(Path(source).with_suffix(suffix))


def chosen_timings_format(path: str, selected_filter: str) -> str:
    """The format for ``path`` saved under ``selected_filter``: the filter's, else by the file name."""
    return TIMINGS_FILTERS.get(selected_filter) or timings_format(path)


def ask_timings_path(parent: QWidget | None, source: str | Path) -> tuple[str, str] | None:
    """Ask where to save the timings of the job on ``source``; returns ``(path, format)``
    (format ``json`` or ``chrome``) or None when cancelled."""
    filters = list(TIMINGS_FILTERS)
    path, selected = QFileDialog.getSaveFileName(parent, "Export timings", default_timings_name(source), ";;".join(filters), filters[0])
    if not path:
        return None
    return path, chosen_timings_format(path, selected)

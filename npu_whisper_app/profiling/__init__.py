"""Timing of every kernel dispatch, in four parts:

- :mod:`.events`: :class:`TimingEvent`, the :class:`Recorder` devices report to, op categories;
- :mod:`.summary`: per-op / per-layer / per-window summaries and the terminal table;
- :mod:`.export`: files: our JSON, the Chrome trace / Perfetto JSON, :func:`export_timings`;
- :mod:`.live`: :class:`LiveProfile`, running aggregates for the GUI's live views (Qt-free).

The names other modules use are re-exported here (``from npu_whisper_app.profiling import X``).
"""

from __future__ import annotations

from .events import CATEGORIES, OP_CATEGORIES, Listener, Recorder, TimingEvent, now_ns, op_category
from .export import (
    CHROME_SUFFIXES,
    FORMATS,
    assign_lanes,
    chrome_trace,
    export_chrome_trace,
    export_json,
    export_timings,
    timings_format,
)
from .live import LiveProfile
from .summary import OpSummary, format_op_table, summarize_by_layer, summarize_by_op, summary_dict

__all__ = [
    "CATEGORIES",
    "CHROME_SUFFIXES",
    "FORMATS",
    "OP_CATEGORIES",
    "Listener",
    "LiveProfile",
    "OpSummary",
    "Recorder",
    "TimingEvent",
    "assign_lanes",
    "chrome_trace",
    "export_chrome_trace",
    "export_json",
    "export_timings",
    "format_op_table",
    "now_ns",
    "op_category",
    "summarize_by_layer",
    "summarize_by_op",
    "summary_dict",
    "timings_format",
]

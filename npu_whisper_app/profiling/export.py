"""Timing events written to files: our own JSON (events + summary) and the Chrome trace /
Perfetto JSON that ui.perfetto.dev and chrome://tracing open.

:func:`export_timings` picks the format from an explicit ``fmt`` or from the file name:
``*.trace.json`` / ``*.perfetto.json`` → Chrome trace, any other name → our JSON.

The Chrome trace follows the Trace Event Format: one complete event (``"ph": "X"``) per
dispatch with ``ts``/``dur`` in microseconds (floats with nanosecond digits, from the first
dispatch's start), one process per device (``cpu``, ``xrt``, ``host``, …) and one thread per
lane of that device. Dispatches that overlap in time on one device (attention tiles on
several threads) are put on separate lanes, so the events of one thread never overlap,
as the format requires of complete events.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from .events import TimingEvent, op_category
from .summary import summary_dict

FORMATS: tuple[str, ...] = ("json", "chrome")
CHROME_SUFFIXES: tuple[str, ...] = (".trace.json", ".perfetto.json")
_TIME_FIELDS = ("start_ns", "end_ns", "device")  # in ts/dur and pid, not repeated in args


def export_json(events: Sequence[TimingEvent], path: str | Path, extra: dict | None = None) -> None:
    """Write every event and the summary to a JSON file."""
    payload = {
        "summary": summary_dict(events),
        "events": [e.to_dict() for e in events],
    }
    if extra:
        payload.update(extra)
    Path(path).write_text(json.dumps(payload, indent=1))


def assign_lanes(events: Sequence[TimingEvent]) -> list[int]:
    """Lane per event (same order as ``events``) so that events in one lane never overlap.

    Greedy interval colouring per device, in order of start time: a dispatch goes on the
    first lane of its device that is free when it starts; lane numbers are per device, from 0.
    """
    order = sorted(range(len(events)), key=lambda i: (events[i].start_ns, events[i].end_ns))
    lanes = [0] * len(events)
    free_at: dict[str, list[int]] = defaultdict(list)  # device -> end_ns of each lane
    for i in order:
        e = events[i]
        ends = free_at[e.device]
        for lane, end in enumerate(ends):
            if end <= e.start_ns:
                ends[lane] = e.end_ns
                lanes[i] = lane
                break
        else:
            ends.append(e.end_ns)
            lanes[i] = len(ends) - 1
    return lanes


def _device_order(devices: set[str]) -> list[str]:
    """Devices as the tracks are ordered: accelerators by name, ``host`` last."""
    return sorted(devices, key=lambda d: (d == "host", d))


def _event_name(e: TimingEvent) -> str:
    """``op``, with the head and query tile for attention tiles (``attention h3 q5``)."""
    name = e.op
    if e.head is not None:
        name += f" h{e.head}"
    if e.tile is not None:
        name += f" q{e.tile}"
    return name


def _event_args(e: TimingEvent) -> dict:
    """Every field of the event but its times and device (window, layer, op, head, tile,
    flops, bytes, and whatever a device adds later, such as core or cycles); unset ones left out."""
    args = {}
    for f in fields(e):
        if f.name in _TIME_FIELDS:
            continue
        value = getattr(e, f.name)
        if value is not None:
            args[f.name] = value
    args["category"] = op_category(e.op)
    return args


def _us(ns: int) -> float:
    """Nanoseconds as microseconds with three decimals (Perfetto reads them back exactly)."""
    return round(ns / 1000.0, 3)


def chrome_trace(events: Sequence[TimingEvent], extra: dict | None = None) -> dict:
    """The Chrome trace / Perfetto JSON object for ``events`` (see the module docstring)."""
    devices = _device_order({e.device for e in events})
    lanes = assign_lanes(events)
    t0 = min((e.start_ns for e in events), default=0)
    pids = {d: i + 1 for i, d in enumerate(devices)}
    n_lanes: dict[str, int] = defaultdict(int)
    for e, lane in zip(events, lanes):
        n_lanes[e.device] = max(n_lanes[e.device], lane + 1)
    tids: dict[tuple[str, int], int] = {}
    meta: list[dict] = []
    for d in devices:
        pid = pids[d]
        meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": d}})
        meta.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}})
        for lane in range(n_lanes[d]):
            tid = tids[(d, lane)] = len(tids) + 1  # unique over all devices (Perfetto keys threads by tid)
            label = d if d == "host" and n_lanes[d] == 1 else f"{d} #{lane}"
            meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": label}})
            meta.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": lane}})
    slices = [
        {
            "name": _event_name(e),
            "cat": op_category(e.op),
            "ph": "X",
            "ts": _us(e.start_ns - t0),
            "dur": _us(e.end_ns - e.start_ns),
            "pid": pids[e.device],
            "tid": tids[(e.device, lane)],
            "args": _event_args(e),
        }
        for e, lane in zip(events, lanes)
    ]
    other = {
        "generator": "npu-whisper",
        "clock": "time.perf_counter_ns",
        "t0_ns": t0,
        "dispatches": len(events),
        "devices": devices,
    }
    if extra:
        other.update(extra)
    return {"traceEvents": meta + slices, "displayTimeUnit": "ns", "otherData": other}


def export_chrome_trace(events: Sequence[TimingEvent], path: str | Path, extra: dict | None = None) -> None:
    """Write ``events`` as a Chrome trace / Perfetto JSON file (open it in ui.perfetto.dev
    or chrome://tracing); ``extra`` goes into ``otherData``."""
    Path(path).write_text(json.dumps(chrome_trace(events, extra), separators=(",", ":")))


def timings_format(path: str | Path, fmt: str | None = None) -> str:
    """``fmt`` if given (``json`` or ``chrome``), else the format the file name asks for:
    ``*.trace.json`` / ``*.perfetto.json`` → ``chrome``, anything else → ``json``."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown timings format {fmt!r} (expected one of {', '.join(FORMATS)})")
        return fmt
    name = Path(path).name.lower()
    return "chrome" if name.endswith(CHROME_SUFFIXES) else "json"


def export_timings(events: Sequence[TimingEvent], path: str | Path, fmt: str | None = None, extra: dict | None = None) -> str:
    """Write the timing events in format ``fmt`` (``json``: our events + summary;
    ``chrome``: Chrome trace / Perfetto), chosen by :func:`timings_format` when ``fmt`` is
    None. Returns the format written."""
    chosen = timings_format(path, fmt)
    if chosen == "chrome":
        export_chrome_trace(events, path, extra)
    else:
        export_json(events, path, extra)
    return chosen

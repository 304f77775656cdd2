"""Timing exports: the Chrome trace / Perfetto JSON of a real transcription, and the format choice."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from media import EVAL_DEV

from npu_whisper_app.profiling import (
    TimingEvent,
    assign_lanes,
    chrome_trace,
    export_chrome_trace,
    export_timings,
    op_category,
    timings_format,
)

JFK = EVAL_DEV / "jfk.flac"


def ev(op: str, start: int, end: int, device: str = "cpu", head: int | None = None, tile: int | None = None) -> TimingEvent:
    return TimingEvent(0, 1, op, device, start, end, 10, 20, head, tile)


@pytest.fixture(scope="module")
def jfk_events() -> list[TimingEvent]:
    """The timing events of a real transcription (tiny.en on the cpu), on a whole 30 s
    window (openai-whisper's loop; the batched mode trims jfk's to 14 s)."""
    from npu_whisper_app.pipeline import Engine, TranscribeOptions

    result = Engine("tiny.en", "cpu").transcribe(str(JFK), TranscribeOptions(batched=False))
    assert result.events
    return list(result.events)


def _ns(us: float) -> int:
    """Microseconds back to nanoseconds, as Perfetto reads a float ``ts``/``dur``."""
    return round(us * 1000)


def test_chrome_trace_of_a_transcription(jfk_events: list[TimingEvent], tmp_path: Path) -> None:
    path = tmp_path / "jfk.trace.json"
    export_chrome_trace(jfk_events, path, {"source": str(JFK)})
    doc = json.loads(path.read_text())  # valid JSON
    assert doc["displayTimeUnit"] == "ns" and doc["otherData"]["source"] == str(JFK)
    slices = [t for t in doc["traceEvents"] if t["ph"] == "X"]
    meta = [t for t in doc["traceEvents"] if t["ph"] == "M"]
    assert len(slices) == len(jfk_events)  # one complete event per dispatch
    assert len(slices) + len(meta) == len(doc["traceEvents"])

    # one process per device, named; every thread named
    processes = {t["pid"]: t["args"]["name"] for t in meta if t["name"] == "process_name"}
    assert sorted(processes.values()) == sorted({e.device for e in jfk_events})
    threads = {t["tid"]: (t["pid"], t["args"]["name"]) for t in meta if t["name"] == "thread_name"}
    assert {(s["pid"], s["tid"]) for s in slices} == {(pid, tid) for tid, (pid, _) in threads.items()}
    assert len({name for _, name in threads.values()}) == len(threads)

    # the same dispatches, times from the first one, durations to the nanosecond
    t0 = min(e.start_ns for e in jfk_events)
    assert min(s["ts"] for s in slices) == 0.0
    for s, e in zip(slices, jfk_events):
        assert isinstance(s["ts"], float) and isinstance(s["dur"], float)
        assert _ns(s["ts"]) == e.start_ns - t0 and _ns(s["dur"]) == e.duration_ns
        assert processes[s["pid"]] == e.device and s["cat"] == op_category(e.op)
        assert s["args"]["op"] == e.op and s["args"]["layer"] == e.layer and s["args"]["window"] == e.window
        assert s["args"]["flops"] == e.flops and s["args"]["bytes"] == e.bytes
        if e.op == "attention":
            assert s["name"] == f"attention h{e.head} q{e.tile}" and (s["args"]["head"], s["args"]["tile"]) == (e.head, e.tile)
        elif e.head is None and e.tile is None:
            assert s["name"] == e.op and "head" not in s["args"] and "tile" not in s["args"]

    # complete events on one thread never overlap (so Perfetto nests them correctly)
    per_tid: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for s in slices:
        per_tid[s["tid"]].append((_ns(s["ts"]), _ns(s["ts"]) + _ns(s["dur"])))
    for spans in per_tid.values():
        spans.sort()
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    # the attention tiles ran on several threads at once: they needed more than one lane
    attention_tids = {s["tid"] for s in slices if s["args"]["op"] == "attention"}
    assert len(attention_tids) > 1


def test_overlapping_dispatches_get_separate_lanes() -> None:
    events = [ev("attention", 0, 10, head=0, tile=0), ev("attention", 5, 15, head=1, tile=0),
              ev("attention", 10, 20, head=0, tile=1), ev("im2col", 2, 4, device="host")]
    assert assign_lanes(events) == [0, 1, 0, 0]
    doc = chrome_trace(events)
    slices = [t for t in doc["traceEvents"] if t["ph"] == "X"]
    assert [s["tid"] for s in slices[:3]] == [slices[0]["tid"], slices[1]["tid"], slices[0]["tid"]]
    assert slices[0]["tid"] != slices[1]["tid"] != slices[3]["tid"]
    names = {t["args"]["name"] for t in doc["traceEvents"] if t["name"] == "thread_name"}
    assert names == {"cpu #0", "cpu #1", "host"}
    assert [s["ts"] for s in slices] == [0.0, 0.005, 0.01, 0.002] and slices[1]["dur"] == 0.01


def test_empty_trace_is_valid(tmp_path: Path) -> None:
    export_chrome_trace([], tmp_path / "empty.trace.json")
    doc = json.loads((tmp_path / "empty.trace.json").read_text())
    assert doc["traceEvents"] == [] and doc["otherData"]["dispatches"] == 0


def test_export_timings_picks_the_format(tmp_path: Path) -> None:
    events = [ev("fc1", 0, 1000), ev("fc2", 1000, 3000)]
    assert timings_format("a.json") == "json"
    assert timings_format("a.timings.json") == "json"
    assert timings_format("a.trace.json") == timings_format("A.Perfetto.JSON") == "chrome"
    assert timings_format("a.json", "chrome") == "chrome"
    with pytest.raises(ValueError, match="unknown timings format"):
        timings_format("a.json", "csv")

    assert export_timings(events, tmp_path / "run.json") == "json"
    ours = json.loads((tmp_path / "run.json").read_text())
    assert len(ours["events"]) == 2 and ours["summary"]["events"] == 2

    assert export_timings(events, tmp_path / "run.trace.json", extra={"model": "tiny.en"}) == "chrome"
    trace = json.loads((tmp_path / "run.trace.json").read_text())
    assert trace["otherData"]["model"] == "tiny.en" and len([t for t in trace["traceEvents"] if t["ph"] == "X"]) == 2

    assert export_timings(events, tmp_path / "forced.json", "chrome") == "chrome"
    assert "traceEvents" in json.loads((tmp_path / "forced.json").read_text())

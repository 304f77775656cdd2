"""Qt-free live aggregation used by the GUI's performance panel."""

import numpy as np

from npu_whisper_app.profiling import CATEGORIES, LiveProfile, TimingEvent


def ev(window, layer, op, start, end, head=None, tile=None, flops=0, device="cpu"):
    return TimingEvent(window, layer, op, device, start, end, flops, 0, head, tile)


def test_live_profile_window_and_job_aggregates():
    lp = LiveProfile()
    lp.add([ev(0, -1, "conv1", 0, 1_000_000, flops=2_000_000), ev(0, 0, "attention", 1_000_000, 3_000_000, 1, 2)])
    lp.add([ev(0, 0, "fc1", 3_000_000, 4_000_000)])
    assert lp.version == 2
    layers, m = lp.layer_matrix("window")
    assert layers == [-1, 0]
    assert m[0, CATEGORIES.index("conv stem")] == 1.0
    assert m[1, CATEGORIES.index("attention")] == 2.0
    assert m[1, CATEGORIES.index("mlp")] == 1.0
    tiles = lp.tile_matrix("window", layer=0)
    assert tiles.shape == (2, 3) and tiles[1, 2] == 2.0
    # a new window resets the window scope but not the job scope
    lp.add([ev(1, 0, "attention", 10_000_000, 11_000_000, 0, 0)])
    _, mw = lp.layer_matrix("window")
    assert mw.sum() == 1.0
    _, mj = lp.layer_matrix("job")
    assert mj.sum() == 5.0
    assert lp.window_ms() == {0: 4.0, 1: 1.0}
    assert np.isclose(dict((o, g) for o, _, g in lp.op_rates())["conv1"], 2.0)
    lanes, per_cat, _ = lp.timeline_arrays()  # the timeline holds the new window only
    assert lanes == ["cpu #0"] and list(per_cat) == ["attention"]


def test_timeline_arrays_are_laned_and_reset_per_window():
    lp = LiveProfile()
    lp.add([ev(0, 0, "attention", 0, 10_000_000, 0, 0), ev(0, 0, "attention", 5_000_000, 15_000_000, 1, 0)])
    lp.add([ev(0, 0, "fc1", 20_000_000, 30_000_000), ev(0, 0, "im2col", 30_000_000, 31_000_000, device="host")])
    lanes, per_cat, end = lp.timeline_arrays()
    assert lanes == ["cpu #0", "cpu #1", "host"]
    x0, x1, row = per_cat["attention"]
    assert list(x0) == [0.0, 5.0] and list(x1) == [10.0, 15.0] and list(row) == [0, 1]
    assert list(per_cat["mlp"][2]) == [0] and list(per_cat["conv stem"][2]) == [2]
    assert end == 31.0
    lp.add([ev(1, 0, "fc2", 100_000_000, 101_000_000)])
    lanes, per_cat, end = lp.timeline_arrays()
    assert lanes == ["cpu #0"] and list(per_cat) == ["mlp"] and end == 1.0


def test_recorder_flushes_by_time_from_several_threads_without_losing_events():
    import threading

    from npu_whisper_app.profiling import Recorder, now_ns

    rec = Recorder(flush_every_s=0.001)
    batches = []
    rec.add_listener(batches.append)

    def produce(tag):
        for i in range(5000):
            t = now_ns()
            rec.record(tag, "cpu", t, now_ns(), head=i, tile=0)

    threads = [threading.Thread(target=produce, args=(f"t{k}",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.flush()
    got = [e for b in batches for e in b]
    assert len(batches) > 3  # flushed by time, not only at the end
    assert len(got) == len(rec.events) == 15000
    for k in range(3):  # every event once, each thread's in order
        assert [e.head for e in got if e.op == f"t{k}"] == list(range(5000))

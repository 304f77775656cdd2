"""Qt-free live aggregation used by the GUI's performance panel."""

import numpy as np

from npu_whisper_app.profiling import CATEGORIES, LiveProfile, TimingEvent, assign_lanes


def ev(window, layer, op, start, end, head=None, tile=None, flops=0, device="cpu"):
    return TimingEvent(window, layer, op, device, start, end, flops, 0, head, tile)


def test_assign_lanes_separates_overlaps():
    events = [ev(0, 0, "attention", 0, 10, 0, 0), ev(0, 0, "attention", 5, 15, 1, 0), ev(0, 0, "attention", 10, 20, 0, 1)]
    assert assign_lanes(events) == [0, 1, 0]


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
    bars = lp.timeline()
    assert len(bars) == 1 and bars[0].lane == "cpu #0" and bars[0].category == "attention"

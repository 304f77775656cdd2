"""Small GUI pieces: eliding labels, empty-plot placeholders, the timings save dialog."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from gui_helpers import close_window, isolate  # noqa: E402

from npu_whisper_app.profiling import TimingEvent  # noqa: E402

LONG = "Could not open the microphone: " + "a very long reason, " * 25  # 500+ characters


@pytest.fixture
def env(tmp_path, monkeypatch):
    for k, v in isolate(tmp_path).items():
        monkeypatch.setenv(k, v)
    return tmp_path


def test_elided_label_keeps_a_small_minimum_and_the_full_text_in_the_tooltip(qtbot):
    from PySide6.QtWidgets import QHBoxLayout, QWidget

    from npu_whisper_app.gui.elided_label import ElidedLabel

    host = QWidget()
    layout = QHBoxLayout(host)
    label = ElidedLabel("Ready")
    layout.addWidget(label)
    qtbot.addWidget(host)
    host.resize(300, 40)
    host.show()
    qtbot.waitExposed(host)
    before = host.minimumSizeHint().width()

    label.setText(LONG)
    assert len(LONG) >= 500
    assert label.minimumSizeHint().width() <= 200
    assert host.minimumSizeHint().width() == before  # the window's minimum did not grow
    assert label.text() == LONG and label.toolTip() == LONG
    qtbot.waitUntil(lambda: label.shown_text().endswith("…"), timeout=2000)
    assert label.is_elided()
    assert label.fontMetrics().horizontalAdvance(label.shown_text()) <= label.contentsRect().width()

    host.resize(6000, 40)  # wide enough: the whole text shows
    qtbot.waitUntil(lambda: not label.is_elided(), timeout=2000)
    assert label.shown_text() == LONG

    label.setText("Done")
    assert label.shown_text() == "Done" and label.toolTip() == "Done"


def test_status_bar_messages_do_not_widen_the_main_window(qtbot, env):
    from npu_whisper_app.gui.main_window import MainWindow

    w = MainWindow(dialogs=False, preload=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    width, minimum = w.width(), w.minimumSizeHint().width()
    w.statusBar().showMessage(LONG)
    qtbot.wait(50)
    assert w.width() == width and w.minimumSizeHint().width() == minimum
    close_window(w)


def _batch(layer: int = 0) -> list[TimingEvent]:
    t = 0
    out = []
    for op in ("ln1", "qkv", "fc1"):
        out.append(TimingEvent(0, layer, op, "cpu", t, t + 1_000_000, 10**6))
        t += 1_000_000
    for h in range(2):
        for tile in range(3):
            out.append(TimingEvent(0, layer, "attention", "cpu", t, t + 100_000, 1000, 0, h, tile))
            t += 100_000
    return out


def test_empty_plots_say_what_will_appear_there(qtbot):
    from npu_whisper_app.gui.perf_panel import PerfPanel

    p = PerfPanel()
    qtbot.addWidget(p)
    p.resize(1000, 700)
    p.show()
    qtbot.waitExposed(p)
    holders = p.placeholders
    assert set(holders) == {"bars", "heatmap", "timeline", "ops"}
    assert "Time per encoder layer" in holders["bars"].text() and "appears here" in holders["bars"].text()
    assert "head" in holders["heatmap"].text() and "dispatch" in holders["timeline"].text()
    for key, holder in holders.items():
        assert holder.isVisible(), key
        assert holder.geometry() == holder.parentWidget().rect()  # covers its plot, text centred in it
    assert not p.bars_plot.getPlotItem().getAxis("left").isVisible()  # no bare 0–1 axes

    p.add_timings(_batch())
    p.redraw()
    for key, holder in holders.items():
        assert not holder.isVisible(), key
    assert p.bars_plot.getPlotItem().getAxis("left").isVisible()

    p.reset("cpu", "tiny.en")  # a new job: empty again
    p.redraw()
    assert all(holder.isVisible() for holder in holders.values())


def test_timings_dialog_offers_json_and_chrome_trace(qtbot, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from npu_whisper_app.gui import timings_dialog as td

    seen = {}

    def fake(parent, caption, start, filters, selected):
        seen.update(start=start, filters=filters.split(";;"), selected=selected)
        return answer

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake))
    answer = ("/tmp/talk.timings.json", "Chrome trace / Perfetto (*.trace.json)")
    assert td.ask_timings_path(None, "/data/talk.flac") == ("/tmp/talk.timings.json", "chrome")
    assert seen["start"] == "/data/talk.timings.json"
    assert seen["filters"] == ["Timings JSON (*.json)", "Chrome trace / Perfetto (*.trace.json)"]
    answer = ("/tmp/talk.timings.json", "Timings JSON (*.json)")
    assert td.ask_timings_path(None, "/data/talk.flac") == ("/tmp/talk.timings.json", "json")
    answer = ("/tmp/talk.trace.json", "")  # no filter reported: the file name decides
    assert td.ask_timings_path(None, "/data/talk.flac") == ("/tmp/talk.trace.json", "chrome")
    answer = ("", "")
    assert td.ask_timings_path(None, "/data/talk.flac") is None

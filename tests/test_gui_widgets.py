"""GUI pieces that need no model: settings, device list, transcript find/copy, plots, recording path."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from gui_helpers import close_window, isolate  # noqa: E402

from npu_whisper_app.devices import DeviceInfo  # noqa: E402
from npu_whisper_app.profiling import TimingEvent  # noqa: E402


@pytest.fixture
def env(tmp_path, monkeypatch):
    for k, v in isolate(tmp_path).items():
        monkeypatch.setenv(k, v)
    return tmp_path


def _window(qtbot, **kw):
    from npu_whisper_app.gui.main_window import MainWindow

    w = MainWindow(dialogs=False, preload=False, **kw)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_settings_survive_a_restart(qtbot, env):
    w = _window(qtbot)
    w.options.model.setCurrentIndex(w.options.model.findData("tiny.en"))
    w.options.language.setCurrentIndex(w.options.language.findData("de"))
    w.options.task.setCurrentIndex(w.options.task.findData("translate"))
    w.options.word_timestamps.setChecked(True)
    assert not w.options.short_window.isEnabled()  # an option of openai-whisper's loop only
    assert w._options().batched is None  # the default (batched) mode
    w.options.sequential.setChecked(True)
    assert w.options.short_window.isEnabled()
    w.options.short_window.setChecked(True)
    w.choices.recent_files = ["/x/a.wav"]
    close_window(w)
    assert (env / "settings.ini").exists()

    w2 = _window(qtbot)
    c = w2.options.read(w2.choices)
    assert (c.model, c.language, c.task, c.word_timestamps, c.sequential, c.short_window) == ("tiny.en", "de", "translate", True, True, True)
    assert w2._options().short_window and w2._options().batched is False  # the job gets them
    assert w2.options.short_window.isEnabled()
    assert w2.choices.recent_files == ["/x/a.wav"]
    assert [a.text() for a in w2.recent_menu.actions()][0] == "a.wav"
    close_window(w2)


def test_unavailable_device_is_greyed_with_reason(qtbot, env, monkeypatch):
    import npu_whisper_app.gui.options_bar as ob

    monkeypatch.setattr(ob, "probe_all", lambda: [
        DeviceInfo(name="cpu", available=True, description="host CPU", reason=""),
        DeviceInfo(name="xrt", available=False, description="", reason="no /dev/accel/accel0"),
    ])
    w = _window(qtbot)
    item = w.options.device_item("xrt")
    assert item is not None and not item.isEnabled()
    assert "no /dev/accel/accel0" in item.toolTip()
    assert w.options.device_item("cpu").isEnabled()
    close_window(w)


def test_transcript_find_copy_select(qtbot, env):
    from PySide6.QtGui import QGuiApplication

    w = _window(qtbot)
    tv = w.transcript
    for i, text in enumerate(["And so my fellow Americans", "ask not what your country can do for you", "ask what you can do"]):
        tv.add_segment({"start": 3.0 * i, "end": 3.0 * i + 2.5, "text": " " + text})
    w.act_find.trigger()
    assert tv.find_bar.isVisible()
    tv.find_bar.edit.setText("country")
    assert tv.table.currentRow() == 1
    assert tv.find_text("ask", 1) == 2
    assert tv.find_text("ask", 1) == 1  # wraps around
    assert tv.find_text("nothing-like-this") == -1
    w.act_select_all.trigger()
    tv.copy()
    assert "fellow Americans" in QGuiApplication.clipboard().text()
    assert "ask what you can do" in QGuiApplication.clipboard().text()
    close_window(w)


def test_perf_panel_draws_batches(qtbot, env):
    w = _window(qtbot)
    p = w.perf
    p.reset("cpu", "base")
    t = 0
    for layer in (-1, 0, 1, 2):
        batch = []
        ops = ["conv1", "conv2"] if layer < 0 else ["ln1", "qkv", "attention", "out_proj", "fc1", "fc2"]
        for op in ops:
            if op == "attention":
                for h in range(4):
                    for tile in range(6):
                        batch.append(TimingEvent(0, layer, op, "cpu", t, t + 100_000, 1000, 0, h, tile))
                        t += 50_000
            else:
                batch.append(TimingEvent(0, layer, op, "cpu", t, t + 1_000_000, 10**6))
                t += 1_000_000
        p.add_timings(batch)
        qtbot.waitUntil(lambda: not p.pending, timeout=2000)
    data = p.plot_data()
    assert data["bars"] > 0 and data["heatmap"] == 24 and data["timeline"] > 0 and data["ops"] == 8
    assert p.fig["windows"].text() == "1"
    # lanes: overlapping attention tiles need two lanes
    lanes, _, _ = p.profile.timeline_arrays()
    assert lanes == ["cpu #0", "cpu #1"]
    # heatmap of one layer
    p.layer.setCurrentIndex(p.layer.findData(1))
    p.redraw()
    assert p.heat_image.image.shape == (4, 6)
    assert p.save_png(env / "panel.png") and (env / "panel.png").stat().st_size > 1000
    close_window(w)


def test_missing_file_and_microphone_errors_keep_app_alive(qtbot, env, monkeypatch):
    import npu_whisper_app.gui.record_panel as rp
    from npu_whisper_app.audio.capture import MicrophoneError

    w = _window(qtbot)
    assert w.open_file(env / "nope.wav") is None
    assert "file not found" in w.errors[-1]
    assert "file not found" in w.statusBar().currentMessage()

    class NoMic:
        def __init__(self, *a, **k):
            pass

        def start(self):
            raise MicrophoneError("no such input device 'x'")

    monkeypatch.setattr(rp, "Microphone", NoMic)
    w.record.button.setEnabled(True)
    assert not w.record.start()
    assert "Cannot record" in w.errors[-1]
    assert w.isVisible()
    close_window(w)


def test_recording_path_in_data_dir(env):
    from npu_whisper_app.gui.paths import new_recording_path

    p = new_recording_path()
    assert p.parent == env / "data" / "recordings" and p.suffix == ".wav"


def test_shortcuts(qtbot, env):
    w = _window(qtbot)
    keys = {a.text(): a.shortcut().toString() for a in (w.act_open, w.act_record, w.act_cancel, w.act_export, w.act_find)}
    assert keys == {"&Open…": "Ctrl+O", "&Record": "Ctrl+R", "&Cancel": "Esc", "&Export Transcript…": "Ctrl+E", "&Find…": "Ctrl+F"}
    close_window(w)


def test_many_signal_emits_do_not_crash_the_interpreter():
    """PySide6 6.12 loses a reference to True per emit; the GUI package pins it."""
    import sys

    from PySide6.QtCore import QObject, Signal

    import npu_whisper_app.gui  # noqa: F401  (applies the work-around)

    class Source(QObject):
        ping = Signal(int, object)

    s = Source()
    got = []
    s.ping.connect(lambda i, o: got.append(i))
    for i in range(50_000):
        s.ping.emit(i, [None, True, False])
    assert len(got) == 50_000
    assert sys.getrefcount(True) > 1000 and sys.getrefcount(None) > 1000

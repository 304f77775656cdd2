"""The desktop app hosts the dictation service (under Xvfb, real Qt widgets): the Dictation
tab's settings are ``dictate.json``'s, ``npu-whisper dictate --toggle`` from another process
drives the tab, the words arrive in a second X client's text field, a standalone
``npu-whisper dictate`` and the app each leave the other alone, and the app keeps one engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from desktop_helpers import Target  # noqa: E402
from gui_helpers import isolate, set_choices  # noqa: E402
from media import EVAL_DEV  # noqa: E402

from npu_whisper_app.live.decoder import Decoded  # noqa: E402

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X display (run under xvfb-run)")

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


@pytest.fixture(scope="session")
def qapp_args():
    return ["npu-whisper-test", "-platform", "xcb"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    for k, v in isolate(tmp_path).items():
        monkeypatch.setenv(k, v)
    return tmp_path


def words(text: str) -> list[str]:
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()(text).split()


def dictate(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``npu-whisper dictate ARGS`` as a separate process (the socket from the environment)."""
    return subprocess.run([sys.executable, "-m", "npu_whisper_app.cli_dictate", "dictate", *args], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=timeout)


def dictate_in_background(qtbot, *args: str) -> subprocess.CompletedProcess:
    """The same, while this process's Qt event loop keeps running."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(dictate(*args)), daemon=True)
    t.start()
    qtbot.waitUntil(lambda: bool(out), timeout=130_000)
    return out[0]


class ToneEngine:
    """Stands in for the engine (``decode_utterance``): loud audio is 'Hello there'."""

    def decode_utterance(self, audio, options=None, prompt=None, should_stop=None, partial=False) -> Decoded:
        loud = float(np.abs(audio).max()) > 0.05
        return Decoded("Hello there." if loud else "", 0.0, -0.1, 1.0, 30.0, 0.01, None if loud else "empty")


def tone_bursts(n: int) -> np.ndarray:
    t = np.arange(int(0.8 * SR)) / SR
    burst = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    gap = np.zeros(SR, np.float32)
    return np.concatenate([gap] + [np.concatenate([burst, gap]) for _ in range(n)] + [gap])


def test_tab_settings_round_trip_through_dictate_json(qtbot, env) -> None:
    from npu_whisper_app.desktop.settings import DictateSettings, load_settings, save_settings, settings_path
    from npu_whisper_app.gui.dictation import DictationWidget

    path = settings_path()
    assert path == env / "dictate.json"
    save_settings(DictateSettings(hotkey="<Super>F9", vocabulary=["Nguyen"], method="type"))  # as `dictate --save` leaves it
    w = DictationWidget(engine_provider=ToneEngine)
    qtbot.addWidget(w)
    assert w.method_combo.currentData() == "type" and w.vocabulary.text() == "Nguyen"
    assert w.language_combo.currentData() is None and w.auto_stop.value() == 0 and w.auto_stop.text() == "never"
    # the user changes each setting in the tab; each change is saved at once
    w.method_combo.setCurrentIndex(w.method_combo.findData("off"))
    assert load_settings().method == "off"
    w.language_combo.setCurrentIndex(w.language_combo.findData("de"))
    w.auto_stop.setValue(7)
    w.spoken_commands.setChecked(True)
    w.sounds.setChecked(True)
    w.vocabulary.setText("Kubernetes, Nguyen ,  ")
    w.vocabulary.editingFinished.emit()
    saved = json.loads(path.read_text())
    assert {k: saved[k] for k in ("method", "language", "auto_stop_s", "spoken_commands", "sounds", "vocabulary")} == {
        "method": "off", "language": "de", "auto_stop_s": 7.0, "spoken_commands": True, "sounds": True, "vocabulary": ["Kubernetes", "Nguyen"]}
    assert saved["hotkey"] == "<Super>F9"  # the service's own fields are kept
    # the service the tab runs uses them: vocabulary in the prompt, language and commands
    svc = w.worker.service
    assert svc.settings.language == "de" and svc.settings.vocabulary == ["Kubernetes", "Nguyen"]
    assert svc.sink.joiner.commands is not None
    w.shutdown()
    # a new tab (the app started again) shows what was saved
    w2 = DictationWidget(engine_provider=ToneEngine)
    qtbot.addWidget(w2)
    assert w2.tab_settings() == {"method": "off", "language": "de", "vocabulary": ["Kubernetes", "Nguyen"],
                                 "spoken_commands": True, "sounds": True, "auto_stop_s": 7.0}
    w2.shutdown()


def test_words_are_kept_in_the_tab_when_delivery_fails_and_the_user_is_told_once(qtbot, env) -> None:
    from npu_whisper_app.desktop.delivery import TextDelivery
    from npu_whisper_app.gui.dictation import DictationWidget
    from npu_whisper_app.live.dictation import DictationOptions
    from npu_whisper_app.live.sources import FilePlayer

    audio = tone_bursts(2)
    delivery = TextDelivery(keyboard=None, clipboard=None, keyboard_problem="no way to send keys in this test")
    w = DictationWidget(engine_provider=ToneEngine, wav_dir=env / "rec", options=DictationOptions(vad="energy"),
                        source_factory=lambda _dev: FilePlayer(audio, speed=2.0), delivery=delivery)
    qtbot.addWidget(w)
    assert w.settings.method == "paste"
    w.worker.app_active = False  # another application has the focus: the words go there
    failed: list[str] = []
    w.worker.delivered.connect(lambda text, ok, how: failed.append(text) if not ok else None)
    w.start()
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)  # the file ends the session
    assert w.finals == ["Hello there.", "Hello there."]
    qtbot.waitUntil(lambda: len(failed) == 2, timeout=10_000)
    told = [n for n in w.notices if "cannot be pasted" in n]
    assert len(told) == 1 and "kept in the dictation transcript" in told[0]
    w.shutdown()


def test_toggle_from_another_process_drives_the_app_and_the_words_reach_the_other_app(qtbot, env) -> None:
    """The app window (tiny.en) serves the socket: ``dictate --toggle`` starts and stops the
    tab's dictation, each final is pasted into the Tk field (another X client, focused),
    a standalone service is refused with a plain message, and one engine does it all."""
    from npu_whisper_app.audio.decode import load_audio
    from npu_whisper_app.gui.main_window import MainWindow
    from npu_whisper_app.live.sources import FilePlayer
    from npu_whisper_app.pipeline import Engine

    made: list = []

    def factory(model, device, on_notice):
        made.append(Engine(model, device, on_notice=on_notice))
        return made[-1]

    rng = np.random.default_rng(5)
    room = lambda s: (rng.standard_normal(int(s * SR)) * 1e-4).astype(np.float32)  # noqa: E731
    speech = np.concatenate([room(0.5), load_audio(EVAL_DEV / "goforward.wav"), room(30)])
    set_choices("tiny.en", "cpu")
    w = MainWindow(dialogs=False, engine_factory=factory)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.engine_info is not None or bool(w.errors), timeout=120_000)
    assert not w.errors, w.errors
    tab = w.dictation
    assert tab.serving, tab.serving_message
    assert "npu-whisper dictate --toggle" in tab.reach.text()
    tab.worker._source_factory = lambda _dev: FilePlayer(speech)
    target = Target(env)  # the other application takes the focus
    try:
        qtbot.waitUntil(lambda: not tab.worker.app_active, timeout=10_000)
        r = dictate_in_background(qtbot, "--status")
        assert r.returncode == 0 and r.stdout.strip() == "idle", r.stderr
        r = dictate_in_background(qtbot, "--toggle")
        assert r.returncode == 0 and r.stdout.strip() == "listening", r.stderr
        qtbot.waitUntil(lambda: tab.running, timeout=10_000)  # the tab shows it
        try:
            qtbot.waitUntil(lambda: words(target.text()) == ["go", "forward", "10", "meters"], timeout=120_000)
        except Exception:
            raise AssertionError(f"field {target.text()!r}; tab {tab.finals!r}; notices {tab.notices!r}") from None
        assert words(" ".join(tab.finals)) == ["go", "forward", "10", "meters"]  # and in the tab
        r = dictate_in_background(qtbot, "--toggle")
        assert r.returncode == 0 and r.stdout.strip() in ("decoding", "idle"), r.stderr
        qtbot.waitUntil(lambda: not tab.running, timeout=60_000)
        assert dictate_in_background(qtbot, "--status").stdout.strip() == "idle"
        # a standalone service started now says the app serves, and loads no model
        second = dictate_in_background(qtbot, "--no-tray", "--model", "tiny.en")
        assert second.returncode == 1 and "the npu-whisper app is running and serves dictation" in second.stderr, second.stderr
        assert "loading" not in second.stderr
        # --quit does not close the app
        q = dictate_in_background(qtbot, "--quit")
        assert q.returncode == 1 and "Close the app" in q.stderr
        assert w.isVisible() and tab.serving
    finally:
        target.close()
    assert len(made) == 1  # the file jobs' engine decoded the dictation: one model in the app
    assert tab.wav_path and Path(tab.wav_path).exists()
    w.close()
    assert not Path(os.environ["NPU_WHISPER_DICTATE_SOCKET"]).exists()  # given back on close


def test_app_leaves_a_running_service_alone(qtbot, env) -> None:
    """``npu-whisper dictate`` holds the socket: the app says so in the tab and keeps off it."""
    from npu_whisper_app.desktop.control import ControlServer, request
    from npu_whisper_app.gui.main_window import MainWindow

    seen: list[str] = []
    service = ControlServer(lambda c: (seen.append(c), {"ok": True, "state": "idle"})[1], owner="service")
    service.start()
    try:
        w = MainWindow(dialogs=False, preload=False)
        qtbot.addWidget(w)
        tab = w.dictation
        assert not tab.serving
        assert "The dictation service (npu-whisper dictate) is already running" in tab.reach.text()
        assert request("status")["owner"] == "service"  # still the service's
        w.close()
        assert request("toggle")["owner"] == "service"  # closing the app did not take it away
        assert seen[-1] == "toggle"
    finally:
        service.close()

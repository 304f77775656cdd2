"""``npu-whisper dictate`` as a user runs it, under Xvfb: the service in its own process
(real Whisper tiny.en, a recording played as the microphone), driven by
``dictate --toggle/--status/--quit`` from other processes and by the X11 hotkey; the
words arrive in a second X client's text field."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from desktop_helpers import HeldKeys, Target, wait_for
from media import EVAL_DEV, write_wav

from npu_whisper_app.audio.decode import load_audio

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


def words(text: str) -> list[str]:
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()(text).split()


class Service:
    def __init__(self, tmp_path: Path, *extra: str, tray: bool = False) -> None:
        rng = np.random.default_rng(5)
        room = lambda s: (rng.standard_normal(int(s * SR)) * 1e-4).astype(np.float32)  # noqa: E731
        audio = np.concatenate([room(0.5), load_audio(EVAL_DEV / "goforward.wav"), room(30)])
        self.wav = write_wav(tmp_path / "speech.wav", audio)
        self.env = dict(os.environ, NPU_WHISPER_DICTATE_SOCKET=str(tmp_path / "ctl.sock"), NPU_WHISPER_DICTATE_SETTINGS=str(tmp_path / "dictate.json"), PYTHONPATH=str(ROOT))
        self.err: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "npu_whisper_app.cli_dictate", "dictate", "--model", "tiny.en", "--device", "cpu", "--input", str(self.wav),
             *([] if tray else ["--no-tray"]), "--recordings", str(tmp_path / "rec"), "--hotkey", "<Ctrl><Alt>d", *extra],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True).start()
        try:
            wait_for(lambda: any("dictation service ready" in e for e in self.err) or self.proc.poll() is not None, 120, "the service")
            assert self.proc.poll() is None, "".join(self.err)
        except BaseException:
            self.close()
            raise

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "npu_whisper_app.cli_dictate", "dictate", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)

    def state(self) -> str:
        return self.ctl("--status").stdout.strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def target(tmp_path):
    t = Target(tmp_path)
    yield t
    t.close()


def test_toggle_from_another_process_and_the_hotkey_put_words_in_the_other_app(tmp_path: Path, target) -> None:
    svc = Service(tmp_path)
    try:
        assert svc.state() == "idle"
        r = svc.ctl("--toggle")
        assert r.returncode == 0 and r.stdout.strip() == "listening", r.stderr
        try:
            wait_for(lambda: words(target.text()) == ["go", "forward", "10", "meters"], 120, "the words in the field")
        except AssertionError:
            raise AssertionError(f"field {target.text()!r}; the service said: {''.join(svc.err)}") from None
        r = svc.ctl("--toggle")
        assert r.stdout.strip() in ("decoding", "idle"), r
        wait_for(lambda: svc.state() == "idle", 60, "idle")
        first = target.text()

        # the hotkey (Ctrl+Alt+D, held through XTest as a user would) starts it again
        keys = HeldKeys("Control_L", "Alt_L", "d")
        keys.press()
        keys.release()
        wait_for(lambda: svc.state() == "listening", 30, "listening after the hotkey")
        wait_for(lambda: words(target.text()) == ["go", "forward", "10", "meters"] * 2, 120, "the words a second time")
        assert target.text().startswith(first + " ")  # joined with a space to what was there
        keys.press()
        keys.release()
        wait_for(lambda: svc.state() == "idle", 60, "idle after the hotkey")
        # each paste's V came with Ctrl only, never with the hotkey's Alt
        assert [k["state"] for k in target.presses("v")] == [4, 4]

        # a second service is refused; --quit ends the first
        second = subprocess.run([sys.executable, "-m", "npu_whisper_app.cli_dictate", "dictate", "--no-tray", "--model", "tiny.en"], cwd=ROOT, env=svc.env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "already running" in second.stderr
        assert svc.ctl("--quit").returncode == 0
        assert svc.proc.wait(60) == 0
        recs = sorted((tmp_path / "rec").glob("dictation-*.wav"))
        assert len(recs) == 2 and all(r.with_suffix(".txt").read_text().strip() for r in recs)
    finally:
        svc.close()


def test_toggle_without_a_service_says_so(tmp_path: Path) -> None:
    env = dict(os.environ, NPU_WHISPER_DICTATE_SOCKET=str(tmp_path / "none.sock"), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "npu_whisper_app.cli_dictate", "dictate", "--toggle"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no dictation service is running" in r.stderr


def test_service_with_its_status_window_toggles_and_quits(tmp_path: Path, target) -> None:
    """With Qt (no system tray under Xvfb: the status window), the words still go to the
    other application, which keeps the focus; --quit ends the Qt loop."""
    svc = Service(tmp_path, tray=True)
    try:
        assert svc.ctl("--toggle").stdout.strip() == "listening"
        wait_for(lambda: words(target.text()) == ["go", "forward", "10", "meters"], 120, "the words in the field")
        assert svc.ctl("--quit").returncode == 0
        assert svc.proc.wait(60) == 0
    finally:
        svc.close()

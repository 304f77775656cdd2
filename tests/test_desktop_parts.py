"""Desktop dictation parts without a display or Whisper: spoken commands and joining,
vocabulary prompt, settings file, control socket, hotkey parsing, auto-stop and the
service's states with a stand-in decoder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from npu_whisper_app.desktop.control import ControlError, ControlServer, SocketTaken, request
from npu_whisper_app.desktop.delivery import is_terminal
from npu_whisper_app.desktop.hotkey import HotkeyError, parse_hotkey
from npu_whisper_app.desktop.service import DictationService
from npu_whisper_app.desktop.settings import DictateSettings, load_settings, save_settings, update_settings
from npu_whisper_app.desktop.vocabulary import VocabularyDecoder, vocabulary_prompt
from npu_whisper_app.live.decoder import Decoded
from npu_whisper_app.live.sources import FilePlayer
from npu_whisper_app.live.textproc import SpokenCommands, UtteranceJoiner

SR = 16000


def test_spoken_commands_become_text_and_whisper_punctuation_around_them_goes() -> None:
    c = SpokenCommands()
    assert c.apply("Hello, comma, world. Period.") == "Hello, world."
    assert c.apply("Fine. New line.") == "Fine.\n"
    assert c.apply("Dear John, new paragraph. Thanks for the letter.") == "Dear John,\n\nThanks for the letter."
    assert c.apply("is it question mark") == "is it?"
    assert c.apply("Nothing to do here.") == "Nothing to do here."


def test_joiner_spaces_and_capitalises_across_utterances() -> None:
    j = UtteranceJoiner()
    assert [j.join(t) for t in ["hello there.", "how are you?", "I am fine", "and you"]] == [
        "Hello there.", " How are you?", " I am fine", " and you"]
    j2 = UtteranceJoiner(SpokenCommands())
    assert [j2.join(t) for t in ["first line, new line", "second"]] == ["First line,\n", "Second"]
    assert j2.join("   ") == ""


def test_terminal_detection_by_wm_class() -> None:
    assert is_terminal(("xterm", "XTerm")) and is_terminal(("gnome-terminal-server", "Gnome-terminal"))
    assert is_terminal(("kitty", "kitty")) and is_terminal(("org.wezfurlong.wezterm", "org.wezfurlong.wezterm"))
    assert not is_terminal(("firefox", "Firefox")) and not is_terminal(None)


class FakeDecoder:
    """Stands in for WhisperUtteranceDecoder: records prompts; 'speech' is loud audio."""

    def __init__(self) -> None:
        self.prompts: list[str | None] = []
        self.options = type("O", (), {"final": "transcribe"})()

    def decode(self, audio, prompt=None, should_stop=None, partial=False) -> Decoded:
        self.prompts.append(prompt)
        loud = float(np.abs(audio).max()) > 0.05
        return Decoded("Hello Kubernetes." if loud else "", 0.0, -0.1, 1.0, 30.0, 0.01, None if loud else "empty")


def test_vocabulary_goes_after_the_session_prompt() -> None:
    assert vocabulary_prompt([]) == ""
    assert vocabulary_prompt(["Kubernetes", " Nguyen ", ""]) == "Glossary: Kubernetes, Nguyen."
    inner = FakeDecoder()
    dec = VocabularyDecoder(inner, ["Kubernetes"])
    assert dec.options is inner.options  # the session reads the wrapped decoder's options
    dec.decode(np.zeros(10, np.float32))
    dec.decode(np.zeros(10, np.float32), "previous text.")
    assert inner.prompts == ["Glossary: Kubernetes.", "previous text. Glossary: Kubernetes."]


def test_settings_round_trip_and_a_bad_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "dictate.json"
    assert load_settings(path) == DictateSettings()
    s = DictateSettings(vocabulary=["Kubernetes"], spoken_commands=True, auto_stop_s=5.0)
    save_settings(s, path)
    assert load_settings(path) == s
    path.write_text("{not json")
    problems: list[str] = []
    assert load_settings(path, problems.append) == DictateSettings()
    assert len(problems) == 1 and "could not be read" in problems[0]
    assert (tmp_path / "dictate.json.bad").read_text() == "{not json"  # the user's file is kept
    path.write_text(json.dumps({"vocabulary": "a, b", "colour": "red"}))
    assert load_settings(path, problems.append).vocabulary == ["a", "b"]
    assert "colour" in problems[-1]
    # a change saved by one program keeps what another saved
    save_settings(DictateSettings(hotkey="<Super>F9"), path)
    assert update_settings(path, sounds=True).hotkey == "<Super>F9"
    assert load_settings(path) == DictateSettings(hotkey="<Super>F9", sounds=True)
    with pytest.raises(TypeError):
        update_settings(path, colour="red")


def test_control_socket_answers_and_refuses_a_second_server(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with pytest.raises(ControlError, match="no dictation service is running"):
        request("status", path)
    seen: list[str] = []
    server = ControlServer(lambda c: (seen.append(c), {"ok": True, "state": "idle"})[1], path)
    server.start()
    try:
        assert request("toggle", path) == {"ok": True, "state": "idle", "owner": "service"}
        assert request("bogus", path)["ok"] is False
        assert seen == ["toggle"]
        with pytest.raises(ControlError, match="already running"):
            ControlServer(lambda c: {}, path).start()
    finally:
        server.close()
    # the app serving: a service started then is told so, in plain words
    app = ControlServer(lambda c: {"ok": True, "state": "idle"}, path, owner="app")
    app.start()
    try:
        with pytest.raises(SocketTaken, match="the npu-whisper app is running and serves dictation") as taken:
            ControlServer(lambda c: {}, path, owner="service").start()
        assert taken.value.owner == "app"
    finally:
        app.close()
    assert not path.exists()
    path.write_text("")  # a stale socket file left by a crash is replaced
    s2 = ControlServer(lambda c: {"ok": True, "state": "x"}, path)
    path.unlink()
    s2.start()
    assert request("status", path)["state"] == "x"
    s2.close()


def test_hotkey_parsing() -> None:
    assert parse_hotkey("<Ctrl><Alt>d") == (["ctrl", "alt"], "d")
    assert parse_hotkey("super+shift+F9") == (["super", "shift"], "F9")
    for bad in ("<Ctrl", "hyper+x", "<Ctrl>"):
        with pytest.raises(HotkeyError):
            parse_hotkey(bad)


class ListSink:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.name = "list"

    def deliver(self, text: str):
        from npu_whisper_app.desktop.delivery import DeliveryResult

        self.texts.append(text)
        return DeliveryResult(True, False, "list")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def wait_state(svc, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while svc.state != state:
        assert time.monotonic() < deadline, f"state {svc.state}, expected {state}"
        time.sleep(0.02)


def test_service_states_vocabulary_and_auto_stop(tmp_path: Path) -> None:
    """A tone burst as 'speech' (the energy VAD), then silence: the words are delivered
    with the vocabulary in the prompt, and auto-stop ends the session by itself."""
    t = np.arange(int(0.8 * SR)) / SR
    burst = (0.3 * np.sin(2 * np.pi * 300 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    audio = np.concatenate([np.zeros(SR // 2, np.float32), burst, np.zeros(20 * SR, np.float32)])
    settings = DictateSettings(vocabulary=["Kubernetes"], auto_stop_s=1.0)
    states: list[str] = []
    notices: list[str] = []
    inner = FakeDecoder()
    sink = ListSink()
    # the energy VAD: a tone burst is not speech to Silero
    svc = DictationService(settings, inner, lambda: FilePlayer(audio, speed=4.0), delivery=sink, on_state=states.append,
                           on_notice=lambda m, e: notices.append(m), wav_dir=tmp_path, session_options={"vad": "energy"})
    assert svc.handle("status") == {"ok": True, "state": "idle"}
    assert svc.handle("toggle")["state"] == "listening"
    wait_state(svc, "idle")  # auto-stop, long before the 20 s of silence are played
    assert states == ["listening", "decoding", "idle"]
    assert sink.texts == ["Hello Kubernetes."]
    assert inner.prompts and all(p == "Glossary: Kubernetes." for p in inner.prompts)
    assert any("without speech" in n for n in notices)
    assert svc.last_result.audio_s < 15  # stopped by auto-stop, not by the end of the file
    svc.close()


def test_delivery_off_or_declined_keeps_finals_out_of_other_apps_but_not_from_the_caller(tmp_path: Path) -> None:
    """"Only in this window" (method off) and the app's own window focused (should_deliver
    False) deliver nothing; every final still reaches on_event (the app's tab shows it).
    Settings changed between sessions apply to the next one."""
    t = np.arange(int(0.8 * SR)) / SR
    burst = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    audio = np.concatenate([np.zeros(SR // 2, np.float32), burst, np.zeros(3 * SR, np.float32)])
    settings = DictateSettings(method="off")
    finals: list[str] = []
    sink = ListSink()
    allow = [True]
    svc = DictationService(settings, FakeDecoder(), lambda: FilePlayer(audio, speed=4.0), delivery=sink, wav_dir=tmp_path,
                           session_options={"vad": "energy"}, should_deliver=lambda: allow[0],
                           on_event=lambda ev: finals.append(ev.text) if type(ev).__name__ == "Final" and ev.text else None)
    for method, focused_here, expect in (("off", False, []), ("paste", True, []), ("paste", False, ["Hello Kubernetes."])):
        finals.clear()
        settings.method, allow[0] = method, not focused_here
        svc.apply_settings()
        svc.start()
        wait_state(svc, "idle")  # the file ends: the session ends
        svc.sink.wait_idle(10)
        assert finals == ["Hello Kubernetes."], method
        assert sink.texts == expect, (method, focused_here)
    settings.spoken_commands = True
    svc.apply_settings()
    assert svc.sink.joiner.commands is not None
    svc.close()


def test_start_and_stop_sounds_are_outside_the_recording(tmp_path: Path, monkeypatch) -> None:
    """The start sound has finished before the source opens; the stop sound starts after
    it is closed - so neither can be transcribed. Start/stop from the socket commands."""
    from npu_whisper_app.desktop import service as service_mod

    log: list[str] = []

    class LoggedPlayer(FilePlayer):
        def start(self, *a):
            log.append("source open")
            super().start(*a)

        def stop(self):
            if "source closed" not in log:
                log.append("source closed")
            super().stop()

    monkeypatch.setattr(service_mod.sounds, "play", lambda freqs, device=None: log.append("start sound" if freqs == service_mod.sounds.START else "stop sound"))
    svc = DictationService(DictateSettings(sounds=True), FakeDecoder(), lambda: LoggedPlayer(np.zeros(30 * SR, np.float32)),
                           delivery=ListSink(), wav_dir=tmp_path, session_options={"vad": "energy"})
    assert svc.handle("start")["state"] == "listening"
    assert svc.handle("stop")["state"] in ("decoding", "idle")
    wait_state(svc, "idle")
    deadline = time.monotonic() + 10
    while "stop sound" not in log and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log == ["start sound", "source open", "source closed", "stop sound"]
    svc.close()


def test_dictate_options_survive_the_hand_over_to_the_tray_program() -> None:
    """``npu-whisper dictate`` re-runs itself as gui/dictate_service.py with the same choices."""
    import argparse

    from npu_whisper_app.cli_dictate import add_dictate_parser, dictate_argv

    p = argparse.ArgumentParser()
    add_dictate_parser(p.add_subparsers(dest="command"))
    argv = ["dictate", "--model", "tiny.en", "--input", "x.wav", "--no-restore-clipboard", "--vocabulary", "a, b",
            "--auto-stop", "3", "--no-hotkey", "--partials", "--mode", "push-to-talk", "--speed", "2"]
    a = p.parse_args(argv)
    assert vars(p.parse_args(["dictate", *dictate_argv(a)])) == vars(a)

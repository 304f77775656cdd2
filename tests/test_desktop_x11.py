"""Text delivery into another X client (a Tk text field in its own process), under
Xvfb: clipboard + Ctrl+V, Ctrl+Shift+V for a terminal, typing, the hotkey's modifiers
held, the user's clipboard restored, a failing method, joined utterances."""

from __future__ import annotations

import threading
import time

import pytest
from desktop_helpers import HeldKeys, Target, clipboard_text, set_clipboard, wait_for

from npu_whisper_app.desktop.delivery import DeliveryOptions, TextDelivery, is_terminal
from npu_whisper_app.desktop.sink import DeliverySink
from npu_whisper_app.desktop.x11 import KeyboardError, XTestKeyboard
from npu_whisper_app.live.dictation import Final
from npu_whisper_app.live.textproc import SpokenCommands, UtteranceJoiner

CONTROL, SHIFT, MOD1 = 4, 1, 8


@pytest.fixture
def target(tmp_path):
    t = Target(tmp_path)
    yield t
    t.close()


def final(i: int, text: str) -> Final:
    return Final(i, 0.0, 1.0, text, None, 0.0, 0.0, 0.1, 0, time.monotonic())


def test_paste_goes_into_the_focused_window_and_the_clipboard_is_restored(target) -> None:
    set_clipboard("what the user had copied")
    notices: list[str] = []
    d = TextDelivery.for_desktop(DeliveryOptions(restore_delay_s=0.3), on_notice=notices.append)
    assert isinstance(d.keyboard, XTestKeyboard) and d.clipboard is not None
    assert d.keyboard.focused_class() == ("npuwtarget", "Npuwtarget")
    r = d.deliver("Hello from dictation.")
    assert r.delivered and "Ctrl+V" in r.how, r
    target.wait_text("Hello from dictation.")
    (v,) = target.presses("v")
    assert v["state"] == CONTROL  # Ctrl and nothing else
    wait_for(lambda: clipboard_text() == "what the user had copied", what="the clipboard restored")
    d.close()
    assert notices == []


def test_terminal_gets_ctrl_shift_v(tmp_path) -> None:
    term = Target(tmp_path, "xterm")
    try:
        d = TextDelivery.for_desktop()
        assert is_terminal(d.keyboard.focused_class())
        r = d.deliver("ls -l")
        assert "Ctrl+Shift+V" in r.how, r
        term.wait_text("ls -l")
        assert term.presses("v") == [] and [k["state"] for k in term.presses("V")] == [CONTROL | SHIFT]
        d.close()
    finally:
        term.close()


def test_held_hotkey_modifiers_do_not_reach_the_paste(target) -> None:
    """The user still holds Ctrl+Alt of the hotkey when the text is ready: the paste
    waits for their release, and its V carries Ctrl only."""
    held = HeldKeys("Control_L", "Alt_L")
    d = TextDelivery.for_desktop(DeliveryOptions(modifier_timeout_s=30))
    held.press()
    wait_for(lambda: d.keyboard.held_modifiers(), what="the modifiers to be down")
    done = threading.Event()
    threading.Thread(target=lambda: (d.deliver("no leaks"), done.set()), daemon=True).start()
    time.sleep(0.5)
    assert not done.is_set() and target.text() == ""  # still waiting for the release
    held.release()
    assert done.wait(30)
    target.wait_text("no leaks")
    (v,) = target.presses("v")
    assert v["state"] == CONTROL, v  # no Alt (Mod1) from the hotkey
    # the key log: the Alt release came before the paste's V
    order = [(k["ev"], k["keysym"]) for k in target.keys]
    assert order.index(("release", "Alt_L")) < order.index(("press", "v"))
    held.close()
    d.close()


def test_typing_reaches_the_field_with_characters_the_layout_lacks(target) -> None:
    d = TextDelivery.for_desktop(DeliveryOptions(method="type"))
    r = d.deliver("Grüße, ñ and 20 °C!")
    assert r.delivered and r.how.startswith("typed"), r
    target.wait_text("Grüße, ñ and 20 °C!")
    d.close()


class BrokenKeyboard:
    name = "broken"

    def wait_modifiers_released(self, timeout_s: float) -> bool:
        return True

    def release_modifiers(self) -> None:
        pass

    def focused_class(self):
        return ("npuwtarget", "Npuwtarget")

    def chord(self, keys) -> None:
        raise KeyboardError("the compositor refused the virtual keyboard")

    type_text = chord


def test_a_failing_paste_leaves_the_text_on_the_clipboard_and_tells_once(target) -> None:
    base = TextDelivery.for_desktop()
    notices: list[str] = []
    d = TextDelivery(DeliveryOptions(), BrokenKeyboard(), base.clipboard, on_notice=notices.append)
    sink = DeliverySink(d, UtteranceJoiner())
    sink.on_event(final(0, "first sentence."))
    sink.on_event(final(1, "second one."))
    assert sink.wait_idle()
    assert [x.result.delivered for x in sink.delivered] == [False, False]
    assert clipboard_text() == "First sentence. Second one."  # nothing lost
    assert len(notices) == 1 and "clipboard" in notices[0] and "refused" in notices[0]
    assert target.text() == ""
    sink.close()
    assert clipboard_text() == "First sentence. Second one."  # not "restored" away
    base.close()


def test_no_display_means_clipboard_less_notice(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    notices: list[str] = []
    d = TextDelivery.for_desktop(on_notice=notices.append)
    r1, r2 = d.deliver("a"), d.deliver("b")
    assert not r1.delivered and not r2.delivered
    assert len(notices) == 1 and "no graphical session" in notices[0]


def test_sink_joins_utterances_and_applies_spoken_commands(target) -> None:
    sink = DeliverySink(TextDelivery.for_desktop(DeliveryOptions(restore_delay_s=0.2)), UtteranceJoiner(SpokenCommands()))
    for i, t in enumerate(["hello there.", "How are you, question mark", "Fine. New line.", "thanks"]):
        sink.on_event(final(i, t))
    sink.on_event(final(9, ""))  # a dropped utterance: nothing
    assert sink.wait_idle()
    target.wait_text("Hello there. How are you? Fine.\nThanks")
    assert all(x.result.delivered for x in sink.delivered)
    sink.close()


def test_xdotool_fallback_pastes_too(target) -> None:
    """Without python-xlib the same goes through the xdotool command."""
    from npu_whisper_app.desktop.x11 import XdotoolKeyboard

    base = TextDelivery.for_desktop()
    kb = XdotoolKeyboard()
    assert kb.focused_class()[1] == "Npuwtarget"
    d = TextDelivery(DeliveryOptions(restore_clipboard=False), kb, base.clipboard)
    assert d.deliver("via xdotool").delivered
    target.wait_text("via xdotool")
    base.close()


def test_x11_hotkey_grab_reports_press_and_release_once(target) -> None:
    """Push-to-talk needs the release; auto-repeat must not look like more presses."""
    from npu_whisper_app.desktop.hotkey import HotkeyError, X11Hotkey

    calls: list[str] = []
    hk = X11Hotkey("<Ctrl><Alt>d", lambda: calls.append("press"), lambda: calls.append("release"))
    hk.start()
    keys = HeldKeys("Control_L", "Alt_L", "d")
    try:
        keys.press()
        wait_for(lambda: calls == ["press"], 10, "the press")
        keys.release()
        wait_for(lambda: calls == ["press", "release"], 10, "the release")
        assert target.presses("d") == []  # grabbed: the other application never saw the key
        with pytest.raises(HotkeyError, match="already uses it"):  # a second grab of the same key
            X11Hotkey("<Ctrl><Alt>d", lambda: None).start()
    finally:
        keys.close()
        hk.close()


def test_paste_works_when_the_layout_has_no_v_key(target) -> None:
    """As on a Cyrillic layout: the V keysym is mapped onto a spare keycode for the chord."""
    from Xlib import XK, display

    d = display.Display()
    kc = d.keysym_to_keycode(XK.string_to_keysym("v"))
    saved = d.get_keyboard_mapping(kc, 1)[0]
    d.change_keyboard_mapping(kc, [tuple(0 for _ in saved)])
    d.sync()
    try:
        delivery = TextDelivery.for_desktop(DeliveryOptions(restore_clipboard=False))
        assert delivery.keyboard._keycode("v") == 0
        assert delivery.deliver("no v key").delivered
        target.wait_text("no v key")
        delivery.close()
    finally:
        d.change_keyboard_mapping(kc, [tuple(saved)])
        d.sync()
        d.close()

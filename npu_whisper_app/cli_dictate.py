"""``npu-whisper dictate`` (the dictation service, and ``--toggle|--start|--stop|--status|--quit``
for the running one) and ``listen --paste``.

Wiring in ``cli.py`` (see docs/patches/cli-dictate.patch)::

    from .cli_dictate import add_dictate_parser, add_paste_option, run_dictate
    add_dictate_parser(sub); add_paste_option(ls)       # in build_parser()
    handlers["dictate"] = run_dictate                    # in main()
    # in cmd_listen: decoder = listen_decoder(decoder, args); sink = listen_paste_sink(args, _err)
    #                on_event(ev): ... sink.on_event(ev); after session.stop(): sink.close()

Also runs alone: ``python -m npu_whisper_app.cli_dictate dictate ...``. The service with its
tray icon is ``gui/dictate_service.py`` (Qt lives in gui/, above the command line): ``dictate``
hands over to it, as its own program, unless ``--no-tray`` or there is no display or no Qt.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- listen --paste ----------------------------------------------------------------------
def add_paste_option(listen_parser: argparse.ArgumentParser) -> None:
    g = listen_parser.add_argument_group("text into other applications")
    g.add_argument("--paste", action="store_true", help="put each final utterance into the focused window, as `npu-whisper dictate` does (clipboard + Ctrl+V; Ctrl+Shift+V in terminals)")
    g.add_argument("--paste-method", choices=["paste", "type", "clipboard"], default="paste", help="with --paste: paste (default), type key by key, or only copy")
    g.add_argument("--spoken-commands", action="store_true", help="with --paste: 'new line', 'period', 'comma', ... said become the text they name")
    g.add_argument("--vocabulary", default=None, metavar="WORDS", help="comma-separated names and jargon given to Whisper as its prompt")


def listen_decoder(decoder, args: argparse.Namespace):
    """``decoder`` with ``--vocabulary`` given to Whisper (unchanged without it)."""
    words = _words(getattr(args, "vocabulary", None))
    if not words:
        return decoder
    from .desktop.vocabulary import VocabularyDecoder

    return VocabularyDecoder(decoder, words)


def listen_paste_sink(args: argparse.Namespace, on_notice: Callable[[str], None] = _err):
    """The text sink for ``listen --paste`` (None without ``--paste``): give it every
    session event (``sink.on_event``) and ``sink.close()`` after ``session.stop()``."""
    if not getattr(args, "paste", False):
        return None
    from .desktop.delivery import DeliveryOptions, TextDelivery
    from .desktop.sink import DeliverySink
    from .live.textproc import SpokenCommands, UtteranceJoiner

    delivery = TextDelivery.for_desktop(DeliveryOptions(method=args.paste_method), on_notice=lambda m: on_notice(f"note: {m}"))
    return DeliverySink(delivery, UtteranceJoiner(SpokenCommands() if args.spoken_commands else None))


def _words(value) -> list[str]:
    if not value:
        return []
    if isinstance(value, list):
        return [w.strip() for w in value if w.strip()]
    return [w.strip() for w in str(value).split(",") if w.strip()]


# -- dictate -----------------------------------------------------------------------------
_DICTATE_ACTIONS: list[argparse.Action] = []


def add_dictate_parser(subparsers) -> argparse.ArgumentParser:
    d = subparsers.add_parser(
        "dictate",
        help="dictation into any application: a tray icon, a hotkey, text where the cursor is",
        description="Runs the dictation service (tray icon, global hotkey on X11); with --toggle, --start, --stop, --status or --quit, "
        "tells the running service instead (bind `npu-whisper dictate --toggle` to a key in your desktop's shortcut settings on Wayland). "
        "Choices given here override the saved ones; --save keeps them.",
    )
    cmd = d.add_mutually_exclusive_group()
    for name, what in (("toggle", "start or stop dictating"), ("start", "start dictating"), ("stop", "stop dictating (the last words are still delivered)"),
                       ("status", "print the service's state"), ("quit", "end the service")):
        cmd.add_argument(f"--{name}", dest="dictate_command", action="store_const", const=name, help=f"running service: {what}")
    d.add_argument("--model", default=None, help="model (default: saved, else base)")
    d.add_argument("--device", default=None, help="encoder device (default: saved, else auto)")
    d.add_argument("--language", default=None, help="spoken language (default: saved, else detected)")
    d.add_argument("--input-device", default=None, help="microphone index or name")
    d.add_argument("--input", default=None, metavar="FILE", help="play this recording as the microphone at every start (tests, demos)")
    d.add_argument("--speed", type=float, default=1.0, help="with --input: times real time")
    d.add_argument("--hotkey", default=None, help="X11 global hotkey, e.g. '<Ctrl><Alt>d' (default: saved, else <Ctrl><Alt>d)")
    d.add_argument("--no-hotkey", action="store_true", help="no global hotkey (use --toggle from a desktop shortcut)")
    d.add_argument("--mode", choices=["toggle", "push-to-talk"], default=None, help="the hotkey toggles, or dictates while held")
    d.add_argument("--method", choices=["paste", "type", "clipboard"], default=None, help="how text reaches the application (default: paste)")
    d.add_argument("--restore-clipboard", action=argparse.BooleanOptionalAction, default=None, help="put the previous clipboard text back after pasting (default: on)")
    d.add_argument("--vocabulary", default=None, metavar="WORDS", help="comma-separated names and jargon for Whisper's prompt ('' clears)")
    d.add_argument("--spoken-commands", action=argparse.BooleanOptionalAction, default=None, help="'new line', 'period', 'comma' said become text (default: off)")
    d.add_argument("--sounds", action=argparse.BooleanOptionalAction, default=None, help="start/stop sounds (never transcribed)")
    d.add_argument("--auto-stop", type=float, default=None, metavar="SECONDS", help="stop after this long without speech (0: never, the default)")
    d.add_argument("--silence-ms", type=int, default=None, help="pause that ends an utterance (default: 500)")
    d.add_argument("--final", choices=["transcribe", "window"], default=None, help="final decode (see `listen --final`; default here: window, about half the decode time, same WER)")
    d.add_argument("--partials", action=argparse.BooleanOptionalAction, default=None, help="decode partial text while speaking (default: off; nothing shows it yet and it slows the final on few cores)")
    d.add_argument("--no-tray", action="store_true", help="no tray icon or window: run in this terminal")
    d.add_argument("--recordings", default=None, metavar="DIR", help="where each session's recording and transcript go")
    d.add_argument("--save", action="store_true", help="save the choices given here as the defaults")
    d.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    _DICTATE_ACTIONS[:] = list(d._actions)
    return d


def _settings_from_args(args: argparse.Namespace):
    from .desktop.settings import load_settings, save_settings

    s = load_settings(on_problem=lambda m: _err(f"note: {m}"))
    for name, attr in (("model", "model"), ("device", "device"), ("language", "language"), ("input_device", "input_device"),
                       ("hotkey", "hotkey"), ("mode", "mode"), ("method", "method"), ("restore_clipboard", "restore_clipboard"),
                       ("spoken_commands", "spoken_commands"), ("sounds", "sounds"), ("auto_stop", "auto_stop_s"),
                       ("silence_ms", "silence_ms"), ("final", "final"), ("partials", "partials")):
        v = getattr(args, name, None)
        if v is not None:
            setattr(s, attr, v)
    if args.vocabulary is not None:
        s.vocabulary = _words(args.vocabulary)
    if args.save:
        _err(f"saved the dictation settings to {save_settings(s)}")
    return s


def run_dictate(args: argparse.Namespace) -> int:
    from .desktop.control import ControlError, request

    if args.dictate_command:
        try:
            reply = request(args.dictate_command)
        except ControlError as exc:
            _err(f"error: {exc}")
            return 1
        if not reply.get("ok"):
            _err(f"error: {reply.get('error')}")
            return 1
        print(reply.get("state", ""), flush=True)
        return 0
    from .desktop import environment

    if not args.no_tray and environment.session_type() != "none" and _has_qt():
        # the tray is Qt, which lives in gui/ (a front end above this one): run the service
        # there, as its own program, with the same choices
        os.execv(sys.executable, [sys.executable, "-m", "npu_whisper_app.gui.dictate_service", *dictate_argv(args)])
    return serve(args)


def dictate_argv(args: argparse.Namespace) -> list[str]:
    """The command line that gives ``args`` again (for the tray program)."""
    out: list[str] = []
    for action in _DICTATE_ACTIONS:
        value = getattr(args, action.dest, None)
        if action.dest in ("help", "dictate_command") or value is None or value == action.default:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            out.append(flag if value else "--no-" + flag[2:])
        elif value is False:
            continue
        elif value is True:
            out.append(flag)
        else:
            out += [flag, str(value)]
    return out


def serve(args: argparse.Namespace, ui_runner: Callable | None = None) -> int:
    """Run the dictation service until ``--quit``, Ctrl+C or the UI's quit. ``ui_runner(service,
    ui, quit_event, hint)`` runs a UI loop (the tray, from gui/) and sets ``ui["tray"]`` to an
    object with ``on_state``/``on_notice``; without it the service runs in the terminal."""
    from .desktop.control import ControlError, ControlServer
    from .desktop.service import DictationService, start_hotkey

    settings = _settings_from_args(args)
    if settings.method == "off":  # the app's "only in this window": the service has no window
        _err("note: the saved delivery method is 'only in the app's window'; the service pastes instead (--method to choose)")
        settings.method = "paste"
    if settings.mode not in ("toggle", "push-to-talk") or settings.method not in ("paste", "type", "clipboard"):
        _err(f"error: bad saved setting (mode {settings.mode!r}, method {settings.method!r}); fix or delete the settings file")
        return 2
    ref: list = []  # the service, once the model is loaded
    quit_event = threading.Event()

    def handle(command: str) -> dict:
        if ref:
            return ref[0].handle(command)
        if command == "quit":
            quit_event.set()
            return {"ok": True, "state": "quitting"}
        return {"ok": False, "error": "the dictation service is still loading the model; try again in a moment"}

    server = ControlServer(handle, owner="service")
    try:
        server.start()  # first: a second service (or the app, serving) says so before loading a model
    except (ControlError, OSError) as exc:
        _err(f"error: {exc}")
        return 1
    try:
        decoder, close_engine = _make_decoder(settings, args)
    except Exception as exc:
        server.close()
        _err(f"error: {exc}")
        return 2
    make_source = _source_factory(settings, args)
    if make_source is None or quit_event.is_set():
        server.close()
        close_engine()
        return 2 if make_source is None else 0
    ui = {"tray": None}

    def on_state(state: str) -> None:
        _err(f"dictation: {state}")
        if ui["tray"] is not None:
            ui["tray"].on_state(state)

    def on_notice(message: str, error: bool) -> None:
        _err(("error: " if error else "note: ") + message)
        if ui["tray"] is not None:
            ui["tray"].on_notice(message, error)

    def on_delivered(d) -> None:
        print(f"{d.text.strip()}", flush=True)
        if not d.result.delivered:
            _err(f"note: not pasted ({d.result.how})")

    service = DictationService(settings, decoder, make_source, on_state=on_state, on_notice=on_notice, on_delivered=on_delivered, wav_dir=args.recordings, persist_settings=True)
    orig_close = service.close

    def close_and_quit() -> None:
        orig_close()
        quit_event.set()

    service.close = close_and_quit  # "quit" from the control socket ends the process
    ref.append(service)
    hotkey, hint = start_hotkey(settings, service, on_notice) if not args.no_hotkey else (None, "npu-whisper dictate --toggle")
    _err(f"dictation service ready: {hint}; text goes into the focused window via {service.delivery.keyboard.name if service.delivery.keyboard else 'the clipboard only'}")
    try:
        if ui_runner is not None:
            ui_runner(service, ui, quit_event, hint)
        else:
            signal.signal(signal.SIGTERM, lambda *_: quit_event.set())
            try:
                while not quit_event.wait(0.2):
                    pass
            except KeyboardInterrupt:
                _err("stopping ...")
    finally:
        if hotkey is not None:
            hotkey.close()
        server.close()
        orig_close()
        close_engine()
    return 0


def _has_qt() -> bool:
    import importlib.util

    return importlib.util.find_spec("PySide6") is not None


def _make_decoder(settings, args: argparse.Namespace):
    import torch

    from .live.decoder import DecoderOptions, WhisperUtteranceDecoder
    from .pipeline import Engine

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    _err(f"loading {settings.model} ...")
    engine = Engine(settings.model, settings.device, on_notice=lambda m: _err(f"note: {m}"))
    return WhisperUtteranceDecoder(engine, DecoderOptions(language=settings.language, final=settings.final)), engine.close


def _source_factory(settings, args: argparse.Namespace):
    from .live.sources import FilePlayer, MicSource

    if args.input:
        from .audio.decode import AudioError, load_audio

        try:
            audio = load_audio(args.input)
        except AudioError as exc:
            _err(f"error: {exc}")
            return None
        return lambda: FilePlayer(audio, speed=args.speed)
    device = settings.input_device
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    return lambda: MicSource(device)


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry (until cli.py registers the subcommand)."""
    parser = argparse.ArgumentParser(prog="npu-whisper")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_dictate_parser(sub)
    args = parser.parse_args(argv)
    return run_dictate(args)


if __name__ == "__main__":
    sys.exit(main())

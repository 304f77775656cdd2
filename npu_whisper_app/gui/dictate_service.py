"""``npu-whisper dictate`` with its tray icon: the dictation service
(``cli_dictate.serve``) run under a Qt event loop with :class:`~npu_whisper_app.gui.tray.DictationTray`.

``npu-whisper dictate`` (the command line, which may not import Qt) hands over to this
program with the same options: ``python -m npu_whisper_app.gui.dictate_service [options]``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from ..cli_dictate import add_dictate_parser, serve


def run_tray(service, ui: dict, quit_event: threading.Event, hint: str) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .tray import DictationTray

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    tray = DictationTray(service, quit_event.set, hotkey_hint=hint)
    ui["tray"] = tray
    timer = QTimer()
    timer.timeout.connect(lambda: app.quit() if quit_event.is_set() else None)
    timer.start(100)
    signal.signal(signal.SIGINT, lambda *_: quit_event.set())
    signal.signal(signal.SIGTERM, lambda *_: quit_event.set())
    app.exec()
    ui["tray"] = None
    tray.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="npu-whisper")
    sub = parser.add_subparsers(dest="command", required=True)
    add_dictate_parser(sub)
    args = parser.parse_args(["dictate", *(sys.argv[1:] if argv is None else argv)])
    return serve(args, ui_runner=run_tray)


if __name__ == "__main__":
    sys.exit(main())

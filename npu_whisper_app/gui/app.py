"""Entry point of the desktop app: ``npu-whisper-app [FILE ...]``."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
from collections.abc import Sequence

from .display import missing_display
from .paths import APP_NAME, log_file

log = logging.getLogger("npu_whisper_app")


def setup_logging() -> None:
    """Log to a rotating file in the user log folder (and warnings to stderr)."""
    root = logging.getLogger("npu_whisper_app")
    if any(getattr(h, "_npu_whisper", False) for h in root.handlers):
        return
    root.setLevel(logging.INFO)
    try:
        handler: logging.Handler = logging.handlers.RotatingFileHandler(log_file(), maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    except OSError as exc:  # an unwritable log folder must not stop the app
        print(f"npu-whisper-app: cannot write the log file ({exc})", file=sys.stderr)
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._npu_whisper = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def install_excepthook() -> None:
    """Unexpected errors are logged and shown; the app keeps running."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        log.error("unexpected error", exc_info=(exc_type, exc, tb))
        from PySide6.QtWidgets import QApplication

        from .main_window import MainWindow

        for w in QApplication.topLevelWidgets():
            if isinstance(w, MainWindow):
                w.show_error(f"Unexpected error: {exc_type.__name__}: {exc}")
                break

    sys.excepthook = hook


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="npu-whisper-app", description="Transcribe speech with Whisper; see where the encoder's time goes.")
    p.add_argument("files", nargs="*", help="audio or video files to open and transcribe")
    p.add_argument("--model", help="model to use (remembered)")
    p.add_argument("--device", help="device for the encoder: auto, cpu, xrt (remembered)")
    return p.parse_args(argv)


def build(argv: Sequence[str] | None = None, *, engine_factory=None):  # type: ignore[no-untyped-def]
    """Set up the application and its main window from command-line ``argv`` and queue the
    files named there; returns ``(app, window)`` without running the event loop."""
    # OpenMP threads that wait for work sleep instead of spinning, so an idle torch
    # thread never takes a core from the UI thread (must be set before torch loads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow, icon_path
    from .settings import Settings

    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    setup_logging()
    app = QApplication.instance() or QApplication([sys.argv[0], *[a for a in (argv or []) if a.startswith("-platform")]])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationDisplayName("NPU Whisper")
    app.setDesktopFileName("npu-whisper")
    if icon_path().exists():
        app.setWindowIcon(QIcon(str(icon_path())))
    install_excepthook()
    settings = Settings()
    if args.model or args.device:
        c = settings.load()
        c.model = args.model or c.model
        c.device = args.device or c.device
        settings.save(c)
    window = MainWindow(settings, engine_factory=engine_factory)
    window.show()
    for f in args.files:
        window.open_file(f)
    log.info("started")
    return app, window


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; without a display, say so in one line on stderr and return 2
    (instead of Qt's platform-plugin abort)."""
    problem = missing_display(os.environ, list(sys.argv[1:] if argv is None else argv))
    if problem:
        print(problem, file=sys.stderr)
        return 2
    app, _window = build(argv)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())

"""Whether Qt will find a display, asked before Qt is started (Qt aborts without one)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

# Qt platform plugins that draw without a window system
HEADLESS_PLATFORMS = frozenset({"offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb", "vkkhrdisplay"})

NO_DISPLAY = (
    "npu-whisper-app: no display (DISPLAY/WAYLAND_DISPLAY unset): run it in a desktop session, "
    "under Xvfb (xvfb-run -a make run), or use the CLI: .venv/bin/npu-whisper transcribe FILE"
)


def _platform_name(value: str) -> str:
    """``offscreen:fontengine=freetype`` or ``xcb;wayland`` -> the first plugin's name."""
    return value.split(";", 1)[0].split(":", 1)[0].strip().lower()


def missing_display(env: Mapping[str, str], argv: Sequence[str] = (), platform: str = sys.platform) -> str | None:
    """The one-line message to print when the app cannot open a window, else None.

    Only Linux and the BSDs need ``DISPLAY`` (X11) or ``WAYLAND_DISPLAY``; a headless Qt
    platform (``QT_QPA_PLATFORM=offscreen`` or ``-platform offscreen``) needs neither."""
    if not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    chosen = env.get("QT_QPA_PLATFORM", "")
    args = list(argv)
    if "-platform" in args[:-1]:
        chosen = args[args.index("-platform") + 1]
    if chosen and _platform_name(chosen) in HEADLESS_PLATFORMS:
        return None
    return NO_DISPLAY

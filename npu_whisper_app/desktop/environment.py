"""Which display server the desktop session runs (X11, Wayland), from the environment."""

from __future__ import annotations

import os
import shutil


def session_type(env: dict[str, str] | None = None) -> str:
    """``"wayland"``, ``"x11"`` or ``"none"`` (no display: a console, ssh)."""
    env = os.environ if env is None else env
    if env.get("WAYLAND_DISPLAY"):
        return "wayland"
    if env.get("DISPLAY"):
        return "x11"
    kind = env.get("XDG_SESSION_TYPE", "").lower()
    return kind if kind in ("x11", "wayland") else "none"


def desktop_name(env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get("XDG_CURRENT_DESKTOP") or env.get("DESKTOP_SESSION") or "").lower()


def is_wlroots(env: dict[str, str] | None = None) -> bool:
    """sway, Hyprland, river, labwc, wayfire, niri...: compositors whose virtual-keyboard
    protocol wtype uses (GNOME and KDE do not offer it)."""
    env = os.environ if env is None else env
    if env.get("SWAYSOCK") or env.get("HYPRLAND_INSTANCE_SIGNATURE"):
        return True
    name = desktop_name(env)
    return any(k in name for k in ("sway", "hyprland", "river", "labwc", "wayfire", "niri", "wlroots"))


def which(name: str) -> str | None:
    return shutil.which(name)

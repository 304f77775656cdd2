"""Work-arounds for bugs of the Qt binding, applied once when the GUI package is imported.

PySide6 6.12.0 (CPython < 3.12): every ``SignalInstance.emit()`` returns ``True``
without taking a reference to it, so each emit from Python (ours, and pyqtgraph's
many range/paint signals) drops one reference to ``True``. After some thousands of
emits the interpreter aborts with "Fatal Python error: bool_dealloc: deallocating True
or False" (or none_dealloc). Python 3.12 made these singletons immortal; here we do
the same for 3.10/3.11 when the bug is seen: their reference counts get a huge
head-room, so the missing references can never bring them to zero.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 48


def emit_drops_a_reference() -> bool:
    """True if emitting a signal from Python loses a reference to ``True``."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(4):
        probe.ping.emit()
    return sys.getrefcount(True) < before


def pin_singletons() -> bool:
    """Give True/False/None a huge reference count where emits leak them; True if done."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False  # immortal already
    if not emit_drops_a_reference():
        return False
    for obj in (True, False, None):
        ctypes.c_ssize_t.from_address(id(obj)).value += _HEADROOM
    return True


PINNED = pin_singletons()

"""The desktop app (PySide6 + pyqtgraph). Only this package imports Qt."""

from . import _qtfix  # noqa: F401  (binding work-arounds, before any signal is emitted)

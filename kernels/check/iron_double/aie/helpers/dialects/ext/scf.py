"""``aie.helpers.dialects.ext.scf._for``: a loop whose body is traced once.

The real ``_for`` emits an ``scf.for`` whose induction variable is an MLIR ``index``
value; the body's Python runs once. The double yields one :class:`LoopIndex` so a kernel
call that passes it where an ``np.int32`` is declared fails as it does in the real flow
(``func.call`` operand type mismatch: ``index`` vs ``i32``).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

TRACE: list = []  # loop nesting while a core body is traced: trip counts


@dataclass(frozen=True)
class LoopIndex:
    """An MLIR ``index`` value (the loop variable)."""

    trips: object

    def __index__(self) -> int:  # Python code cannot turn it into an int
        raise TypeError("an scf.for induction variable is an MLIR index value, not a Python int")


def _for(start, stop=None, step=1) -> Iterator[LoopIndex]:
    trips = start if stop is None else ("dyn" if not isinstance(stop, int) or not isinstance(start, int) else (stop - start) // step)
    TRACE.append(trips)
    try:
        yield LoopIndex(trips)
    finally:
        TRACE.pop()

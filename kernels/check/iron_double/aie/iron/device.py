"""``aie.iron.device``: devices and tiles (mlir-aie ``python/iron/device/device.py``, ``tile.py``).

Geometry from mlir-aie's target models (``lib/Dialect/AIE/IR/AIETargetModel.cpp``): npu1
(AIE2 / AIE-ML, Phoenix & Hawk Point) has 4 usable columns x (1 shim + 1 memtile + 4 compute
rows); ``NPU1Col1`` / ``NPU1Col2`` / ``NPU1Col4`` are its 1/2/4-column partitions. npu2 (AIE2P,
Strix) has 8 columns of the same shape.
"""
from __future__ import annotations


class Tile:
    def __init__(self, col: int | None = None, row: int | None = None) -> None:
        self.col, self.row = col, row

    @property
    def kind(self) -> str:
        return "shim" if self.row == 0 else "mem" if self.row == 1 else "core"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tile) and (self.col, self.row) == (other.col, other.row)

    def __hash__(self) -> int:
        return hash((self.col, self.row))

    def __repr__(self) -> str:
        return f"Tile({self.col}, {self.row})"


class _Any(Tile):
    def __init__(self, kind: str) -> None:
        super().__init__(None, None)
        self._want = kind

    @property
    def kind(self) -> str:
        return self._want

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return id(self)


AnyComputeTile = _Any("core")
AnyMemTile = _Any("mem")
AnyShimTile = _Any("shim")
PlacementTile = Tile


class Device:
    arch = "aie2"
    generation = "npu1"

    def __init__(self, cols: int, rows: int = 6) -> None:
        self.cols, self.rows = cols, rows

    @property
    def name(self) -> str:
        return type(self).__name__


class NPU1(Device):
    def __init__(self) -> None:
        super().__init__(4)


class NPU1Col1(NPU1):
    def __init__(self) -> None:
        Device.__init__(self, 1)


class NPU1Col2(NPU1):
    def __init__(self) -> None:
        Device.__init__(self, 2)


class NPU1Col4(NPU1):
    def __init__(self) -> None:
        Device.__init__(self, 4)


class NPU2(Device):
    arch = "aie2p"
    generation = "npu2"

    def __init__(self) -> None:
        super().__init__(8)


class NPU2Col4(NPU2):
    def __init__(self) -> None:
        Device.__init__(self, 4)

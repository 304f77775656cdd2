"""``aie.helpers.taplib``: TensorAccessPattern and the TensorTiler2D helpers used by designs.

Same constructor as mlir-aie's ``python/helpers/taplib/tap.py``:
``TensorAccessPattern(tensor_dims, offset, sizes, strides)``; sizes/strides are in
elements, outermost first (up to 4 dimensions, the shim DMA's 3 + repeat).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class TensorAccessPattern:
    def __init__(self, tensor_dims: Sequence[int], offset: int, sizes: Sequence[int], strides: Sequence[int]) -> None:
        if len(sizes) != len(strides):
            raise ValueError("sizes and strides must have the same length")
        self.tensor_dims = tuple(int(d) for d in tensor_dims)
        self.offset = int(offset)
        self.sizes = [int(s) for s in sizes]
        self.strides = [int(s) for s in strides]

    @property
    def transformation_dims(self) -> list[tuple[int, int]]:
        return list(zip(self.sizes, self.strides))

    def indices(self) -> np.ndarray:
        """Element offsets into the flat tensor in the order the DMA walks them."""
        idx = np.array([self.offset], dtype=np.int64)
        for size, stride in zip(self.sizes, self.strides):
            idx = (idx[:, None] + np.arange(size, dtype=np.int64)[None, :] * stride).reshape(-1)
        return idx

    def __len__(self) -> int:
        return int(np.prod(self.sizes))

    def __repr__(self) -> str:
        return f"TensorAccessPattern({self.tensor_dims}, offset={self.offset}, sizes={self.sizes}, strides={self.strides})"


class TensorAccessSequence(list):
    """A list of TensorAccessPatterns (what the tilers return)."""


class TensorTiler2D:
    """The two tilers the old designs used (row-major tiles of a 2-D tensor)."""

    @classmethod
    def simple_tiler(cls, tensor_dims, tile_dims=None, tile_col_major=False, iter_col_major=False, pattern_repeat=1):
        rows, cols = tensor_dims
        tr, tc = tile_dims or tensor_dims
        out = TensorAccessSequence()
        order = [(i, j) for j in range(cols // tc) for i in range(rows // tr)] if iter_col_major else \
            [(i, j) for i in range(rows // tr) for j in range(cols // tc)]
        for i, j in order:
            out.append(TensorAccessPattern(tensor_dims, i * tr * cols + j * tc, [pattern_repeat, 1, tr, tc], [0, 0, cols, 1]))
        return out

    @classmethod
    def group_tiler(cls, tensor_dims, tile_dims, tile_group_dims, tile_col_major=False, tile_group_col_major=False,
                    iter_col_major=False, pattern_repeat=1):
        rows, cols = tensor_dims
        tr, tc = tile_dims
        gr, gc = tile_group_dims
        out = TensorAccessSequence()
        for i in range(rows // (tr * gr)):
            for j in range(cols // (tc * gc)):
                out.append(TensorAccessPattern(tensor_dims, i * tr * gr * cols + j * tc * gc,
                                               [pattern_repeat, gr * tr, gc, tc], [0, cols, tc, 1]))
        return out

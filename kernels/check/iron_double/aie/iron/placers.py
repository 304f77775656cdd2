"""``aie.iron.placers.SequentialPlacer``: places what was left as Any*Tile, in order
(compute tiles column by column; links on the memtile of their column; runtime endpoints
on the shim of their column)."""
from __future__ import annotations

from .device import AnyComputeTile, AnyMemTile, AnyShimTile, Tile


class SequentialPlacer:
    def make_placement(self, device, rt, workers, links) -> None:
        taken = {w.tile for w in workers if w.tile is not AnyComputeTile}
        free = [Tile(c, r) for c in range(device.cols) for r in range(2, device.rows) if Tile(c, r) not in taken]
        for w in workers:
            if w.tile is AnyComputeTile:
                if not free:
                    raise ValueError("SequentialPlacer: no compute tile left")
                w.tile = free.pop(0)
        for i, link in enumerate(links):
            if link.tile is AnyMemTile:
                link.tile = Tile(i % device.cols, 1)
        col = 0
        for t in rt.dma_tasks:
            ep = t.handle.endpoint
            if ep.tile is AnyShimTile:
                ep.tile = Tile(col % device.cols, 0)
                col += 1

"""Hardware and driver limits the design check and the pyxrt stand-in enforce.

Every number names where it comes from. mlir-aie sources are cited at the release the
designs target (v1.1.x; see kernels/README.md), the driver at amd/xdna-driver /
drivers/accel/amdxdna.
"""
from __future__ import annotations

from dataclasses import dataclass

KIB = 1024


@dataclass(frozen=True)
class ArrayLimits:
    generation: str
    #: usable array columns of the partition the driver hands out
    cols: int
    #: AIETargetModel.cpp, AIE2TargetModel::getLocalMemorySize() = 0x10000 (64 KiB data memory per core)
    core_memory: int = 64 * KIB
    #: AIETargetModel.cpp, AIE2TargetModel::getMemTileSize() = 0x80000 (512 KiB per memtile)
    memtile_memory: int = 512 * KIB
    #: DMA channels (S2MM in, MM2S out). AIETargetModel.cpp getNumDestSwitchboxConnections /
    #: getNumSourceSwitchboxConnections for the DMA bundle: core tile 2/2, memtile 6/6, shim NOC tile 2/2
    core_dma: tuple[int, int] = (2, 2)
    memtile_dma: tuple[int, int] = (6, 6)
    shim_dma: tuple[int, int] = (2, 2)
    #: AIETargetModel.cpp, AIE2TargetModel::getNumBDs(): 48 on a memtile, 16 on core and shim tiles
    core_bds: int = 16
    memtile_bds: int = 48
    shim_bds: int = 16
    #: AIE dialect CoreOp ``stack_size`` default 0x400 (include/aie/Dialect/AIE/IR/AIEOps.td); the IRON
    #: Worker passes ``stack_size`` through (python/iron/worker.py), None keeps the default
    default_stack: int = 1 * KIB
    #: shim DMA task (npu_dma_memcpy_nd / dma_bd) limits, lib/Dialect/AIEX/IR/AIEXDialect.cpp verify():
    #: "Size 3 exceeds the [1:64] range", "Size 1/0 exceeds the [0:1023] range" (sizes in 32-bit words
    #: for the innermost dimension), "Stride ... exceeds the [1:1M] range", offsets 4-byte aligned
    bd_repeat_max: int = 64
    bd_wrap_max: int = 1023
    bd_stride_max: int = 0x100000
    #: amdxdna driver: npu1_regs.c ``.hwctx_limit = 6``; npu4_regs.c (Strix, npu2 in mlir-aie) ``= 16``
    hwctx_limit: int = 6
    #: amdxdna npu1_regs.c ``.first_col = 1``: on the 5-column Phoenix array column 0 is not handed out,
    #: so partitions live in physical columns 1..4 (mlir-aie's npu1 device has 4 columns)
    first_col: int = 1
    #: the project's own budget (issue #12): contexts per model, runs per 30 s window
    max_contexts: int = 3
    max_runs_per_window: int = 64


NPU1 = ArrayLimits("npu1", cols=4)
NPU2 = ArrayLimits("npu2", cols=8, hwctx_limit=16, first_col=0)
LIMITS = {"npu1": NPU1, "npu2": NPU2}


def fmt_bytes(n: int) -> str:
    return f"{n / KIB:.1f} KiB"

"""The NPU kernel manifest: which xclbin and instruction stream run which kernel, and how.

The Python package reads only ``manifest.json`` and the built files it names, from
``$NPU_WHISPER_KERNELS`` or ``kernels/build/`` in the repository. This module also
*generates* the manifest (and a make include listing the builds) for a set of Whisper
model sizes (issue #12 layout):

* **one xclbin per kernel family** (``gemm.xclbin``, ``attention.xclbin``,
  ``layernorm_n{N}.xclbin``): a model opens at most three hardware contexts;
* **one instruction stream per shape** inside its family's xclbin (an IRON runtime
  sequence bakes the transfer sizes and the runtime-parameter values into the stream);
  the host passes the shape's stream as argument 1 of the same kernel;
* every entry records **the design's own shim DMA access patterns** (``taps``: per
  runtime fill/drain the fifo, the argument, the column, offset/sizes/strides in
  elements), its runtime parameters (``rtps``) and the memtile ``dims_to_stream`` of its
  fifos (``dims``), taken by running the IRON design against the IRON double
  (``kernels/check``) when the manifest is generated. The pyxrt stand-in moves data by
  these patterns, so a host whose packing disagrees with the design gets wrong numbers.

    python -m npu_whisper_app.devices.xrt_manifest --models tiny base \\
        --out kernels/manifest.json --mk kernels/build/kernels.mk

Entry fields: ``id``, ``kind`` (gemm | attention | layernorm), ``xclbin`` (shared by the
family), ``insts`` (this shape's stream), ``kernel`` (``MLIR_AIE``), ``args`` (data
arguments in call order: ``name``, ``dtype`` bf16|f32|i32, flat ``shape``, ``dir``,
``layout``), ``shape``, ``tile``, ``params``, ``build`` (design + arguments for make),
``columns`` (array columns the xclbin's partition needs), ``device`` (npu1 | npu2),
``taps``, ``rtps``, ``dims``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .reference import (
    ARRAY_COLS,
    ARRAY_ROWS,
    ATTN_TILE,
    GEMM_K,
    GEMM_K_PAD,
    GEMM_M,
    GEMM_M_PAD,
    GEMM_N,
    GEMM_N_PAD,
    round_up,
)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 2
FIRST_DATA_GROUP = 3  # kernel args: 0 opcode, 1 instruction bo, 2 instruction count, 3.. data
DTYPE_BYTES = {"bf16": 2, "f32": 4, "i32": 4}
TOOLCHAIN = {
    "target": "npu1 (Phoenix / Hawk Point, 4x4 compute tiles, a 4-column partition)",
    "mlir_aie": "v1.1.x (IRON, python/iron API; see kernels/README.md for the pinned files)",
    "llvm_aie": "Peano llvm-aie nightly 19.0.0.2025xxxx (wheel 'llvm-aie')",
    "xrt": "2.19 (amdxdna driver, Linux 6.10+ / out-of-tree amdxdna)",
    "status": "sources written for these versions; never built or run on hardware (see kernels/README.md)",
}

# Whisper encoder sizes the build covers (n_mels, n_audio_ctx, n_state, n_head).
MODEL_DIMS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (80, 1500, 384, 6),
    "base": (80, 1500, 512, 8),
    "small": (80, 1500, 768, 12),
}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def kernels_dir() -> Path:
    """Where the built kernels are: ``$NPU_WHISPER_KERNELS`` or ``<repo>/kernels/build``."""
    env = os.environ.get("NPU_WHISPER_KERNELS")
    return Path(env) if env else repo_root() / "kernels" / "build"


@dataclass(frozen=True)
class ArgSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]
    dir: str = "in"
    layout: str = "row_major"

    @property
    def nbytes(self) -> int:
        n = DTYPE_BYTES[self.dtype]
        for s in self.shape:
            n *= s
        return n

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "dir": self.dir, "layout": self.layout}


@dataclass
class KernelEntry:
    id: str
    kind: str
    xclbin: str
    insts: str
    kernel: str
    args: list[ArgSpec]
    shape: dict[str, int]
    tile: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    columns: int = 4
    device: str = "npu1"
    taps: list[dict[str, Any]] = field(default_factory=list)
    rtps: dict[str, list[int]] = field(default_factory=dict)
    dims: dict[str, list[list[int]]] = field(default_factory=dict)

    @property
    def group_ids(self) -> list[int]:
        """Kernel argument index of each data argument (its ``group_id``)."""
        return [FIRST_DATA_GROUP + i for i in range(len(self.args))]

    def arg(self, name: str) -> ArgSpec:
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(f"{self.id}: no argument {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "xclbin": self.xclbin,
            "insts": self.insts,
            "kernel": self.kernel,
            "args": [a.to_dict() for a in self.args],
            "shape": self.shape,
            "tile": self.tile,
            "params": self.params,
            "build": self.build,
            "columns": self.columns,
            "device": self.device,
            "taps": self.taps,
            "rtps": self.rtps,
            "dims": self.dims,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KernelEntry:
        args = [ArgSpec(a["name"], a["dtype"], tuple(a["shape"]), a.get("dir", "in"), a.get("layout", "row_major")) for a in d["args"]]
        for a in args:
            if a.dtype not in DTYPE_BYTES:
                raise ValueError(f"kernel {d['id']}: unknown dtype {a.dtype!r}")
        return cls(d["id"], d["kind"], d["xclbin"], d["insts"], d.get("kernel", "MLIR_AIE"), args,
                   dict(d["shape"]), dict(d.get("tile", {})), dict(d.get("params", {})), dict(d.get("build", {})),
                   int(d.get("columns", 4)), d.get("device", "npu1"), list(d.get("taps", [])),
                   dict(d.get("rtps", {})), dict(d.get("dims", {})))


@dataclass
class Manifest:
    root: Path
    entries: list[KernelEntry]
    toolchain: dict[str, Any] = field(default_factory=dict)

    def by_kind(self, kind: str) -> list[KernelEntry]:
        return [e for e in self.entries if e.kind == kind]

    def xclbins(self) -> list[str]:
        """The distinct xclbins (one hardware context each), in first-use order."""
        return list(dict.fromkeys(e.xclbin for e in self.entries))

    def devices(self) -> set[str]:
        """NPU generations the kernels were built for."""
        return {e.device for e in self.entries}

    def get(self, kernel_id: str) -> KernelEntry:
        for e in self.entries:
            if e.id == kernel_id:
                return e
        raise KeyError(kernel_id)

    def missing_files(self) -> list[str]:
        out = []
        for e in self.entries:
            for f in (e.xclbin, e.insts):
                if not (self.root / f).is_file():
                    out.append(f)
        return sorted(set(out))

    def to_dict(self) -> dict[str, Any]:
        return {"version": MANIFEST_VERSION, "toolchain": self.toolchain, "kernels": [e.to_dict() for e in self.entries]}


def load_manifest(root: str | Path | None = None) -> Manifest:
    """Read ``manifest.json`` from a kernels build directory (raises on a bad file)."""
    root = Path(root) if root is not None else kernels_dir()
    path = root / MANIFEST_NAME
    data = json.loads(path.read_text())
    if data.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path}: manifest version {data.get('version')!r}, expected {MANIFEST_VERSION}")
    return Manifest(root, [KernelEntry.from_dict(d) for d in data["kernels"]], data.get("toolchain", {}))


# ---------------------------------------------------------------------------------------
# Generating the build list (runs the IRON designs against the IRON double)
# ---------------------------------------------------------------------------------------

ROW_PAD = GEMM_M_PAD  # rows (frames) are padded to whole 4 x 64-row blocks
BIAS_BLOCKS = 1  # the gemm's B stream carries one extra (k x n) block per column slab: the bias


def design_record(design_path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``kernels/<design_path>``'s ``design(*args)`` against the IRON double and return
    what the host and the stand-in need from it: the runtime sequence's shim DMA tasks
    (``taps``), the runtime-parameter values the sequence writes (``rtps``), the memtile
    ``dims_to_stream`` of its fifos (``dims``) and the columns it occupies."""
    import numpy as np

    from kernels.check import design_check as dc

    design = dc.build(repo_root() / "kernels" / design_path, "design", *args, **kwargs)
    taps = []
    for t in design.runtime.dma_tasks:
        tap = t.tap
        taps.append({
            "io": "fill" if t.is_fill else "drain",
            "fifo": t.handle.fifo.name,
            "arg": t.data.index,
            "col": t.tile.col,
            "offset": tap.offset,
            "sizes": list(tap.sizes),
            "strides": list(tap.strides),
            "obj": t.handle.fifo.nbytes // t.data.dtype.itemsize,  # elements per object on the shim side
        })
    rtps: dict[str, list[int]] = {}
    for task in design.runtime.tasks:
        if isinstance(task, tuple) and task[0] == "inline":
            _, fn, bufs = task
            arrays = [np.zeros(b.nbytes // 4, np.int64) for b in bufs]
            fn(*arrays)
            for b, a in zip(bufs, arrays):
                rtps[b.name] = [int(v) for v in a]
    dims = {f.name: [list(map(int, d)) for d in f.dims_to_stream] for f in design.fifos if f.dims_to_stream}
    cols = {w.tile.col for w in design.workers}
    return {"taps": taps, "rtps": rtps, "dims": dims, "columns": max(cols) + 1, "device": design.device.generation}


def _entry(kid: str, kind: str, xclbin: str, args: list[ArgSpec], shape: dict, tile: dict, params: dict,
           design: str, build_args: list[str], rec: dict[str, Any]) -> KernelEntry:
    return KernelEntry(
        id=kid, kind=kind, xclbin=xclbin, insts=f"{kid}.insts.bin", kernel="MLIR_AIE", args=args, shape=shape,
        tile=tile, params=params, build={"design": design, "args": build_args}, columns=rec["columns"],
        device=rec["device"], taps=rec["taps"], rtps=rec["rtps"], dims=rec["dims"],
    )


def gemm_entry(m: int, k: int, n: int, gelu: bool, device: str = "npu1") -> KernelEntry:
    """``C[M,N] f32 = A[M,K] bf16 @ B + bias (+GELU)``; B pre-tiled ``[N/n][K/k + 1][k][n]`` with
    the bias in the extra block; one stream of ``gemm.xclbin`` per (M, K, N, gelu)."""
    mp, kp, np_ = round_up(m, GEMM_M_PAD), round_up(k, GEMM_K_PAD), round_up(n, GEMM_N_PAD)
    kid = f"gemm_{mp}x{kp}x{np_}" + ("_gelu" if gelu else "") + ("" if device == "npu1" else f"_{device}")
    kb = kp // GEMM_K + BIAS_BLOCKS
    rec = design_record("gemm/gemm.py", mp, kp, np_, gelu, device)
    return _entry(
        kid, "gemm", "gemm.xclbin" if device == "npu1" else f"gemm_{device}.xclbin",
        [
            ArgSpec("a", "bf16", (mp * kp,), layout="row_major[M][K]"),
            ArgSpec("b", "bf16", (np_ // GEMM_N * kb * GEMM_K * GEMM_N,), layout=f"tiled[N/{GEMM_N}][K/{GEMM_K}+1][{GEMM_K}][{GEMM_N}]+bias"),
            ArgSpec("c", "f32", (mp * np_,), dir="out", layout="row_major[M][N]"),
        ],
        {"M": mp, "K": kp, "N": np_},
        {"m": GEMM_M, "k": GEMM_K, "n": GEMM_N, "rows": ARRAY_ROWS, "cols": ARRAY_COLS},
        {"gelu": gelu, "accumulate": "f32", "k_order": "ascending", "bias": "B stream, extra block per slab"},
        "gemm/gemm.py", ["-M", str(mp), "-K", str(kp), "-N", str(np_)] + (["--gelu"] if gelu else []) + ["--device", device],
        rec,
    )


def attention_entry(t: int, d: int, n_head: int, device: str = "npu1") -> KernelEntry:
    """All heads and query tiles of one layer: ``qkv[T_pad][3D]`` bf16 in (as the qkv gemm
    makes it), ``o[H][T_pad/64][65][d]`` bf16 out (64 rows + one row of cycle-counter words
    per (head, tile)); keys >= ``t`` masked."""
    tp = round_up(t, ROW_PAD)
    kid = f"attention_h{n_head}_t{tp}_v{t}" + ("" if device == "npu1" else f"_{device}")
    rec = design_record("attention/attention.py", n_head, tp, d, device, t)
    return _entry(
        kid, "attention", "attention.xclbin" if device == "npu1" else f"attention_{device}.xclbin",
        [
            ArgSpec("qkv", "bf16", (tp * 3 * n_head * d,), layout="row_major[T][q|k|v][H][d]"),
            ArgSpec("o", "bf16", (n_head * (tp // ATTN_TILE) * (ATTN_TILE + 1) * d,), dir="out",
                    layout="[H][T/64][64 rows + 1 timing row][d]"),
        ],
        {"H": n_head, "T": tp, "valid": t, "D": d},
        {"q_rows": ATTN_TILE, "k_rows": ATTN_TILE, "cores": ARRAY_ROWS * ARRAY_COLS},
        {"scale": f"1/sqrt({d})", "online_softmax": True, "p_dtype": "bf16", "timing_row": True},
        "attention/attention.py", ["--heads", str(n_head), "-T", str(tp), "--valid", str(t), "--device", device],
        rec,
    )


def layernorm_entry(m: int, n: int, device: str = "npu1") -> KernelEntry:
    mp = round_up(m, ROW_PAD)
    kid = f"layernorm_{mp}x{n}" + ("" if device == "npu1" else f"_{device}")
    rec = design_record("layernorm/layernorm.py", mp, n, device)
    return _entry(
        kid, "layernorm", f"layernorm_n{n}.xclbin" if device == "npu1" else f"layernorm_n{n}_{device}.xclbin",
        [
            ArgSpec("x", "bf16", (mp * n,), layout="row_major[M][N]"),
            ArgSpec("p", "f32", (2 * n + 16,), layout="gamma[N]|beta[N]|eps|pad[15]"),
            ArgSpec("y", "bf16", (mp * n,), dir="out", layout="row_major[M][N]"),
        ],
        {"M": mp, "N": n},
        {"rows": 16, "cores": ARRAY_ROWS * ARRAY_COLS},
        {"stats": "f32"},
        "layernorm/layernorm.py", ["-M", str(mp), "-N", str(n), "--device", device],
        rec,
    )


def entries_for_model(n_mels: int, n_ctx: int, d: int, n_head: int, n_mlp: int | None = None,
                      device: str = "npu1") -> list[KernelEntry]:
    """Every instruction stream one Whisper encoder window (``2*n_ctx`` mel frames) runs."""
    n_mlp = n_mlp or 4 * d
    return [
        gemm_entry(2 * n_ctx, 3 * n_mels, d, gelu=True, device=device),  # conv1 as gemm
        gemm_entry(n_ctx, 3 * d, d, gelu=True, device=device),  # conv2 (stride 2) as gemm
        gemm_entry(n_ctx, d, 3 * d, gelu=False, device=device),  # fused q/k/v projection
        gemm_entry(n_ctx, d, d, gelu=False, device=device),  # out projection
        gemm_entry(n_ctx, d, n_mlp, gelu=True, device=device),  # fc1 + GELU
        gemm_entry(n_ctx, n_mlp, d, gelu=False, device=device),  # fc2
        attention_entry(n_ctx, d // n_head, n_head, device=device),
        layernorm_entry(n_ctx, d, device=device),
    ]


def build_manifest(dims: list[tuple[int, int, int, int]], root: Path | str = ".", device: str = "npu1") -> Manifest:
    seen: dict[str, KernelEntry] = {}
    for n_mels, n_ctx, d, h in dims:
        for e in entries_for_model(n_mels, n_ctx, d, h, device=device):
            seen.setdefault(e.id, e)
    return Manifest(Path(root), list(seen.values()), dict(TOOLCHAIN))


def write_make_include(manifest: Manifest, path: Path) -> None:
    """``kernels.mk``: the xclbins (one per family) and the instruction streams (one per
    shape), each with the design and arguments that make it."""
    lines = ["# generated by npu_whisper_app.devices.xrt_manifest; do not edit", ""]
    fams: dict[str, KernelEntry] = {}
    for e in manifest.entries:
        fams.setdefault(e.xclbin.removesuffix(".xclbin"), e)
    lines.append("XCLBINS := " + " ".join(fams))
    lines.append("STREAMS := " + " ".join(e.id for e in manifest.entries))
    for name, e in fams.items():  # the xclbin is built from the family's first shape (its core code is shape-free)
        lines.append(f"XDESIGN_{name} := {e.build['design']}")
        lines.append(f"XARGS_{name} := {' '.join(e.build['args'])}")
    for e in manifest.entries:
        lines.append(f"DESIGN_{e.id} := {e.build['design']}")
        lines.append(f"ARGS_{e.id} := {' '.join(e.build['args'])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "base"], choices=sorted(MODEL_DIMS))
    ap.add_argument("--device", default="npu1", choices=["npu1", "npu2"])
    ap.add_argument("--out", type=Path, required=True, help="manifest.json to write")
    ap.add_argument("--mk", type=Path, help="make include to write")
    args = ap.parse_args(argv)
    manifest = build_manifest([MODEL_DIMS[m] for m in args.models], device=args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(manifest.to_dict(), indent=1) + "\n")
    if args.mk:
        write_make_include(manifest, args.mk)


if __name__ == "__main__":
    main()

"""The NPU kernel manifest: which xclbin/instruction files hold which kernel, and how to call it.

The Python package reads only ``manifest.json`` and the built files it names, from
``$NPU_WHISPER_KERNELS`` or ``kernels/build/`` in the repository. This module also
*generates* the manifest (and a make include listing the builds) for a set of Whisper
model sizes: every kernel is compiled for fixed shapes (the IRON runtime sequence bakes
the transfer sizes into the instruction stream), so the list of shapes is the build list.

    python -m npu_whisper_app.devices.xrt_manifest --models tiny base \\
        --out kernels/manifest.json --mk kernels/build/kernels.mk

Entry fields: ``id``, ``kind`` (gemm | attention | layernorm | gelu), ``xclbin``,
``insts`` (file names relative to the manifest), ``kernel`` (name inside the xclbin,
``MLIR_AIE`` for IRON designs), ``args`` (data arguments in call order, each with
``name``, ``dtype`` bf16|f32|i32, ``shape``, ``dir`` in|out, ``layout``), ``shape``
(problem sizes), ``tile`` (per-core tile), ``params`` (baked-in options), ``build``
(the IRON design and its arguments, used by the Makefile).
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
MANIFEST_VERSION = 1
FIRST_DATA_GROUP = 3  # kernel args: 0 opcode, 1 instruction bo, 2 instruction count, 3.. data
DTYPE_BYTES = {"bf16": 2, "f32": 4, "i32": 4}
TOOLCHAIN = {
    "target": "npu1 (Phoenix / Hawk Point, 4x4 compute tiles used, columns 0-3)",
    "mlir_aie": "v1.0 (IRON, python/iron API, wheels from github.com/Xilinx/mlir-aie releases)",
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
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KernelEntry":
        args = [ArgSpec(a["name"], a["dtype"], tuple(a["shape"]), a.get("dir", "in"), a.get("layout", "row_major")) for a in d["args"]]
        for a in args:
            if a.dtype not in DTYPE_BYTES:
                raise ValueError(f"kernel {d['id']}: unknown dtype {a.dtype!r}")
        return cls(d["id"], d["kind"], d["xclbin"], d["insts"], d.get("kernel", "MLIR_AIE"), args,
                   dict(d["shape"]), dict(d.get("tile", {})), dict(d.get("params", {})), dict(d.get("build", {})))


@dataclass
class Manifest:
    root: Path
    entries: list[KernelEntry]
    toolchain: dict[str, Any] = field(default_factory=dict)

    def by_kind(self, kind: str) -> list[KernelEntry]:
        return [e for e in self.entries if e.kind == kind]

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
# Generating the build list
# ---------------------------------------------------------------------------------------


def gemm_entry(m: int, k: int, n: int, gelu: bool) -> KernelEntry:
    mp, kp, np_ = round_up(m, GEMM_M_PAD), round_up(k, GEMM_K_PAD), round_up(n, GEMM_N_PAD)
    kid = f"gemm_{mp}x{kp}x{np_}" + ("_gelu" if gelu else "")
    return KernelEntry(
        id=kid,
        kind="gemm",
        xclbin=f"{kid}.xclbin",
        insts=f"{kid}.insts.bin",
        kernel="MLIR_AIE",
        args=[
            ArgSpec("a", "bf16", (mp, kp)),
            ArgSpec("b", "bf16", (np_ // GEMM_N, kp // GEMM_K, GEMM_K, GEMM_N), layout=f"tiled_k{GEMM_K}_n{GEMM_N}"),
            ArgSpec("bias", "f32", (np_,)),
            ArgSpec("c", "f32", (mp, np_), dir="out"),
        ],
        shape={"M": mp, "K": kp, "N": np_},
        tile={"m": GEMM_M, "k": GEMM_K, "n": GEMM_N, "rows": ARRAY_ROWS, "cols": ARRAY_COLS},
        params={"gelu": gelu, "accumulate": "f32", "k_order": "ascending"},
        build={"design": "gemm/gemm.py", "args": ["-M", str(mp), "-K", str(kp), "-N", str(np_), "-m", str(GEMM_M),
                                                  "-k", str(GEMM_K), "-n", str(GEMM_N)] + (["--gelu"] if gelu else [])},
    )


def attention_entry(t: int, d: int) -> KernelEntry:
    tp = round_up(t, ATTN_TILE)
    kid = f"attention_t{tp}_d{d}"
    return KernelEntry(
        id=kid,
        kind="attention",
        xclbin=f"{kid}.xclbin",
        insts=f"{kid}.insts.bin",
        kernel="MLIR_AIE",
        args=[
            ArgSpec("q", "bf16", (ATTN_TILE, d)),
            ArgSpec("k", "bf16", (tp, d)),
            ArgSpec("v", "bf16", (tp, d)),
            ArgSpec("params", "i32", (4,)),  # [valid_keys, 0, 0, 0]
            ArgSpec("o", "bf16", (ATTN_TILE, d), dir="out"),
        ],
        shape={"Tq": ATTN_TILE, "Tk": tp, "D": d},
        tile={"q_rows": ATTN_TILE, "k_rows": ATTN_TILE, "cores": 4, "rows_per_core": ATTN_TILE // 4},
        params={"scale": f"1/sqrt({d})", "online_softmax": True, "p_dtype": "bf16"},
        build={"design": "attention/attention.py", "args": ["--tk", str(tp), "-d", str(d)]},
    )


def layernorm_entry(m: int, n: int) -> KernelEntry:
    mp = round_up(m, GEMM_M_PAD)
    kid = f"layernorm_{mp}x{n}"
    return KernelEntry(
        id=kid,
        kind="layernorm",
        xclbin=f"{kid}.xclbin",
        insts=f"{kid}.insts.bin",
        kernel="MLIR_AIE",
        args=[
            ArgSpec("x", "bf16", (mp, n)),
            ArgSpec("gamma", "f32", (n,)),
            ArgSpec("beta", "f32", (n,)),
            ArgSpec("params", "f32", (4,)),  # [eps, 0, 0, 0]
            ArgSpec("y", "bf16", (mp, n), dir="out"),
        ],
        shape={"M": mp, "N": n},
        tile={"rows": 16, "cores": 16},
        params={"stats": "f32"},
        build={"design": "layernorm/layernorm.py", "args": ["-M", str(mp), "-N", str(n)]},
    )


def gelu_entry(m: int, n: int) -> KernelEntry:
    mp = round_up(m, GEMM_M_PAD)
    kid = f"gelu_{mp}x{n}"
    return KernelEntry(
        id=kid,
        kind="gelu",
        xclbin=f"{kid}.xclbin",
        insts=f"{kid}.insts.bin",
        kernel="MLIR_AIE",
        args=[ArgSpec("x", "bf16", (mp, n)), ArgSpec("y", "bf16", (mp, n), dir="out")],
        shape={"M": mp, "N": n},
        tile={"rows": 16, "cores": 16},
        params={"form": "tanh"},
        build={"design": "gelu/gelu.py", "args": ["-M", str(mp), "-N", str(n)]},
    )


def entries_for_model(n_mels: int, n_ctx: int, d: int, n_head: int, n_mlp: int | None = None) -> list[KernelEntry]:
    """Every kernel one Whisper encoder needs (one 30 s window: ``2*n_ctx`` mel frames)."""
    n_mlp = n_mlp or 4 * d
    return [
        gemm_entry(2 * n_ctx, 3 * n_mels, d, gelu=True),  # conv1 as gemm
        gemm_entry(n_ctx, 3 * d, d, gelu=True),  # conv2 (stride 2) as gemm
        gemm_entry(n_ctx, d, 3 * d, gelu=False),  # fused q/k/v projection
        gemm_entry(n_ctx, d, d, gelu=False),  # out projection
        gemm_entry(n_ctx, d, n_mlp, gelu=True),  # fc1 + GELU
        gemm_entry(n_ctx, n_mlp, d, gelu=False),  # fc2
        attention_entry(n_ctx, d // n_head),
        layernorm_entry(n_ctx, d),
        gelu_entry(n_ctx, n_mlp),
    ]


def build_manifest(dims: list[tuple[int, int, int, int]], root: Path | str = ".") -> Manifest:
    seen: dict[str, KernelEntry] = {}
    for n_mels, n_ctx, d, h in dims:
        for e in entries_for_model(n_mels, n_ctx, d, h):
            seen.setdefault(e.id, e)
    return Manifest(Path(root), list(seen.values()), dict(TOOLCHAIN))


def write_make_include(manifest: Manifest, path: Path) -> None:
    """``kernels.mk``: one ``KERNELS`` list and the design/arguments of each build."""
    lines = ["# generated by npu_whisper_app.devices.xrt_manifest; do not edit", ""]
    lines.append("KERNELS := " + " ".join(e.id for e in manifest.entries))
    for e in manifest.entries:
        lines.append(f"DESIGN_{e.id} := {e.build['design']}")
        lines.append(f"ARGS_{e.id} := {' '.join(e.build['args'])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "base"], choices=sorted(MODEL_DIMS))
    ap.add_argument("--out", type=Path, required=True, help="manifest.json to write")
    ap.add_argument("--mk", type=Path, help="make include to write")
    args = ap.parse_args(argv)
    manifest = build_manifest([MODEL_DIMS[m] for m in args.models])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(manifest.to_dict(), indent=1) + "\n")
    if args.mk:
        write_make_include(manifest, args.mk)


if __name__ == "__main__":
    main()

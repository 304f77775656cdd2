"""Which AIE C++ source (and -D defines) each core object a design links is built from, and a
static estimate of the stack each kernel function needs (local arrays in its body).

The stack scan is deliberately simple: it adds up the sizes of arrays declared inside a
function body (``T name[EXPR];``) with the object's defines substituted. That is what
overflows a 1 KiB core stack in practice (scalars live in registers); Peano's own frame
sizes are only known after a build.
"""
from __future__ import annotations

import re
from pathlib import Path

TYPE_BYTES = {"float": 4, "bfloat16": 2, "int32_t": 4, "int16_t": 2, "int8_t": 1, "uint32_t": 4, "int": 4,
              "uint16_t": 2, "uint8_t": 1, "double": 8}

KERNELS = Path(__file__).resolve().parents[1]

#: object -> (source relative to a kernels root, defines); the Makefile builds exactly these
OBJECTS: dict[str, tuple[str, dict[str, int]]] = {
    "mm_64x64x32.o": ("aie2/mm.cc", {"DIM_M": 64, "DIM_K": 64, "DIM_N": 32}),
    "mha_d64.o": ("aie2/mha.cc", {"DH": 64, "QROWS": 64, "KROWS": 64}),
    "rows.o": ("aie2/rows.cc", {"ROWS_PER_CALL": 4, "MAX_N": 1024}),
    # the designs before issue #12 (kept under tests/fixtures/old_kernels)
    "mm_bf16_64x64x32.o": ("aie2/mm_bf16.cc", {"DIM_M": 64, "DIM_K": 64, "DIM_N": 32}),
    "flash_attn_d64.o": ("aie2/flash_attn.cc", {"D": 64, "ROWS": 16, "TK": 64}),
    "layernorm.o": ("aie2/layernorm.cc", {"R": 16}),
    "gelu.o": ("aie2/gelu.cc", {}),
}

_ARRAY = re.compile(r"^\s*(?:alignas\(\d+\)\s*)?(?:static\s+)?(?:const\s+)?(" + "|".join(TYPE_BYTES) +
                    r")\s+(\w+)\s*\[([^\]]+)\]\s*(?:=|;)", re.M)


def _eval(expr: str, defines: dict[str, int]) -> int:
    for k, v in sorted(defines.items(), key=lambda kv: -len(kv[0])):
        expr = re.sub(rf"\b{k}\b", str(v), expr)
    if not re.fullmatch(r"[\d\s+*/()-]+", expr):
        raise ValueError(f"cannot size array [{expr}]")
    return int(eval(expr))  # digits and + - * / only (checked above)


def function_bodies(src: str) -> dict[str, str]:
    """``extern "C"``-style top-level functions -> their bodies (brace matched)."""
    out = {}
    for m in re.finditer(r"^[\w\s\*]*?\b(\w+)\s*\([^;{]*\)\s*\{", src, re.M):
        depth, i = 1, m.end()
        while depth and i < len(src):
            depth += {"{": 1, "}": -1}.get(src[i], 0)
            i += 1
        out[m.group(1)] = src[m.end():i - 1]
    return out


def stack_bytes(source: Path, defines: dict[str, int]) -> dict[str, int]:
    """Bytes of local (non-static) arrays per function of ``source``."""
    src = source.read_text()
    defaults = {m.group(1): int(m.group(2)) for m in re.finditer(r"#define\s+(\w+)\s+(\d+)\b", src)}
    env = {**defaults, **defines}
    out = {}
    for name, body in function_bodies(src).items():
        total = 0
        for m in _ARRAY.finditer(body):
            if "static" in m.group(0):
                continue
            total += TYPE_BYTES[m.group(1)] * _eval(m.group(3), env)
        out[name] = total
    return out

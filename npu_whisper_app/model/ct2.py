"""Reader for CTranslate2 model folders (``config.json`` + ``model.bin``), without ctranslate2.

``model.bin`` (binary version 6, little-endian)::

    uint32 version | string spec | uint32 revision | uint32 n_vars
    n_vars x (string name | uint8 rank | uint32 dims[rank] | uint8 dtype | uint32 nbytes | data)
    uint32 n_aliases | n_aliases x (string alias | string target)

where ``string`` is a uint16 length (counting a trailing NUL) followed by the bytes.
A model may be stored split (``model.bin.part1``, ``model.bin.part2``, ...): the parts are
concatenated in order.
"""

from __future__ import annotations

import json
import mmap
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ModelError", "Ct2Model", "read_ct2", "model_bin_parts", "DTYPES"]

SUPPORTED_VERSION = 6

#: dtype byte -> (name, numpy dtype of the stored elements)
DTYPES: dict[int, tuple[str, np.dtype]] = {
    0: ("float32", np.dtype("<f4")),
    1: ("int8", np.dtype("i1")),
    2: ("int16", np.dtype("<i2")),
    3: ("int32", np.dtype("<i4")),
    4: ("float16", np.dtype("<f2")),
    5: ("bfloat16", np.dtype("<u2")),  # raw bits; see Ct2Model.float32()
}


class ModelError(Exception):
    """A model cannot be found, read, converted or loaded (message: path and reason)."""


@dataclass(frozen=True)
class _Var:
    dtype: int
    shape: tuple[int, ...]
    offset: int
    nbytes: int


@dataclass
class Ct2Model:
    """A parsed CTranslate2 model: header, config and zero-copy views of the variables."""

    path: Path
    spec: str
    revision: int
    config: dict
    variables: dict[str, _Var]
    aliases: dict[str, str]
    _buffer: object = field(repr=False, default=None)

    def __contains__(self, name: str) -> bool:
        return self._resolve(name) in self.variables

    def _resolve(self, name: str) -> str:
        seen = set()
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        return name

    def dtype_name(self, name: str) -> str:
        return DTYPES[self.variables[self._resolve(name)].dtype][0]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.variables[self._resolve(name)].shape

    def raw(self, name: str) -> np.ndarray:
        """The stored array (a read-only view into the file, no copy)."""
        key = self._resolve(name)
        if key not in self.variables:
            raise ModelError(f"{self.path}: missing variable {name!r} in model.bin")
        var = self.variables[key]
        dtype = DTYPES[var.dtype][1]
        count = var.nbytes // dtype.itemsize
        arr = np.frombuffer(self._buffer, dtype=dtype, count=count, offset=var.offset)
        arr.flags.writeable = False
        return arr.reshape(var.shape)

    def float32(self, name: str, rows: slice | None = None) -> np.ndarray:
        """The variable (or a block of its rows) as a fresh float32 array.

        float16 and bfloat16 widen exactly; integer (quantized) weights raise ModelError.
        """
        arr = self.raw(name)
        if rows is not None:
            arr = arr[rows]
        code = self.variables[self._resolve(name)].dtype
        if code == 5:  # bfloat16: the high half of a float32
            return (arr.astype(np.uint32) << 16).view(np.float32)
        if code in (0, 4):
            return arr.astype(np.float32)  # always a copy
        raise ModelError(
            f"{self.path}: variable {name!r} is {DTYPES[code][0]} (a quantized model); "
            "only float32/float16/bfloat16 CTranslate2 models are supported — "
            "re-convert it with --quantization float16"
        )

    def scalar(self, name: str, default: int | None = None) -> int | None:
        """An integer scalar variable (e.g. ``encoder/num_heads``), or ``default``."""
        if name not in self:
            return default
        return int(np.asarray(self.raw(name)).reshape(-1)[0])

    def close(self) -> None:
        """Release the file mapping (arrays from ``raw`` must not be used afterwards)."""
        buf, self._buffer = self._buffer, None
        if isinstance(buf, mmap.mmap):
            try:
                buf.close()
            except BufferError:  # a view is still alive; the GC closes it later
                pass

    def __enter__(self) -> Ct2Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def model_bin_parts(folder: Path) -> list[Path]:
    """``model.bin``, or else ``model.bin.part1``, ``.part2``, ... found in ``folder``."""
    single = folder / "model.bin"
    if single.is_file():
        return [single]
    parts = []
    for p in folder.glob("model.bin.part*"):
        m = re.fullmatch(r"model\.bin\.part(\d+)", p.name)
        if m and p.is_file():
            parts.append((int(m.group(1)), p))
    return [p for _, p in sorted(parts)]


def _open_buffer(parts: Sequence[Path]) -> object:
    if len(parts) == 1:
        with open(parts[0], "rb") as f:
            if f.seek(0, 2) == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    total = sum(p.stat().st_size for p in parts)
    buf = bytearray(total)
    view = memoryview(buf)
    pos = 0
    for p in parts:
        with open(p, "rb") as f:
            n = f.readinto(view[pos:])
        pos += n
    return buf


class _Cursor:
    def __init__(self, buf: object, where: Path) -> None:
        self.buf, self.pos, self.size, self.where = buf, 0, len(buf), where

    def need(self, n: int, what: str) -> None:
        if self.pos + n > self.size:
            raise ModelError(
                f"{self.where}: model.bin is truncated ({what} needs {n} bytes at offset "
                f"{self.pos}, file has {self.size})"
            )

    def unpack(self, fmt: str, what: str) -> tuple:
        n = struct.calcsize(fmt)
        self.need(n, what)
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return vals

    def string(self, what: str) -> str:
        (n,) = self.unpack("<H", what)
        self.need(n, what)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        try:
            return raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError(f"{self.where}: model.bin is damaged ({what} is not text)") from None


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError(f"{folder}: not a CTranslate2 model folder (missing config.json)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: unreadable config.json ({e})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path}: config.json is not a JSON object")
    return config


def read_ct2(folder: str | Path, parts: Sequence[Path] | None = None) -> Ct2Model:
    """Parse a CTranslate2 folder; ``parts`` overrides where the model.bin bytes come from.

    Raises ModelError for a missing file, unsupported version, truncated data or unknown dtype.
    The variables are views into a memory map: call ``close()`` (or use ``with``) when done.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: not a folder")
    parts = list(parts) if parts else model_bin_parts(folder)
    if not parts:
        raise ModelError(f"{folder}: not a CTranslate2 model folder (missing model.bin)")
    for p in parts:
        if not p.is_file():
            raise ModelError(f"{folder}: missing model file {p}")
    config = _read_config(folder)
    where = parts[0] if len(parts) == 1 else folder
    buf = _open_buffer(parts)
    try:
        return _parse(buf, where, folder, config)
    except BaseException:
        if isinstance(buf, mmap.mmap):
            buf.close()
        raise


def _parse(buf: object, where: Path, folder: Path, config: dict) -> Ct2Model:
    cur = _Cursor(buf, where)
    (version,) = cur.unpack("<I", "the header")
    if version != SUPPORTED_VERSION:
        raise ModelError(
            f"{where}: unsupported model.bin version {version} (expected {SUPPORTED_VERSION})"
        )
    spec = cur.string("the spec name")
    (revision,) = cur.unpack("<I", "the spec revision")
    (count,) = cur.unpack("<I", "the variable count")
    variables: dict[str, _Var] = {}
    for i in range(count):
        name = cur.string(f"variable #{i} name")
        (rank,) = cur.unpack("<B", f"{name!r} rank")
        shape = cur.unpack(f"<{rank}I", f"{name!r} shape") if rank else ()
        (dtype,) = cur.unpack("<B", f"{name!r} dtype")
        if dtype not in DTYPES:
            raise ModelError(
                f"{where}: unknown dtype {dtype} for variable {name!r} "
                f"(known: {', '.join(f'{k}={v[0]}' for k, v in DTYPES.items())})"
            )
        (nbytes,) = cur.unpack("<I", f"{name!r} size")
        expected = int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype][1].itemsize
        if nbytes != expected:
            raise ModelError(
                f"{where}: variable {name!r} has {nbytes} bytes, shape {list(shape)} "
                f"{DTYPES[dtype][0]} needs {expected}"
            )
        cur.need(nbytes, f"variable {name!r} data")
        variables[name] = _Var(dtype, tuple(shape), cur.pos, nbytes)
        cur.pos += nbytes
    (n_alias,) = cur.unpack("<I", "the alias count")
    aliases = {}
    for _ in range(n_alias):
        alias = cur.string("an alias name")
        aliases[alias] = cur.string(f"alias {alias!r} target")
    if cur.pos != cur.size:
        raise ModelError(
            f"{where}: model.bin has {cur.size - cur.pos} unexpected trailing bytes"
        )
    return Ct2Model(folder, spec, revision, config, variables, aliases, buf)

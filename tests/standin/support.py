"""Test support for the xrt device: load the pyxrt stand-in as ``pyxrt``, make a fake build."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
from whisper.model import AudioEncoder

from npu_whisper_app.devices.xrt_manifest import build_manifest

STANDIN_PATH = Path(__file__).with_name("pyxrt.py")
_module: ModuleType | None = None


def standin_module() -> ModuleType:
    """The stand-in, loaded once under the name ``pyxrt``."""
    global _module
    if _module is None:
        spec = importlib.util.spec_from_file_location("pyxrt", STANDIN_PATH)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        previous = sys.modules.get("pyxrt")
        sys.modules["pyxrt"] = mod  # dataclasses look their module up while it executes
        try:
            spec.loader.exec_module(mod)
        finally:
            if previous is None:
                del sys.modules["pyxrt"]
            else:
                sys.modules["pyxrt"] = previous
        _module = mod
    return _module


@functools.lru_cache(maxsize=8)
def manifest_for(dims: tuple[int, int, int, int]):
    """The manifest of one model's shapes (runs the IRON designs against the double once per dims)."""
    return build_manifest([dims])


def install(monkeypatch, tmp_path: Path, dims: tuple[int, int, int, int]) -> ModuleType:
    """Make ``import pyxrt`` give the stand-in, an NPU node exist and a fake build be found."""
    mod = standin_module()
    mod.reset()
    monkeypatch.setitem(sys.modules, "pyxrt", mod)
    build = tmp_path / "build"
    mod.write_fake_build(build, manifest_for(tuple(dims)))
    accel = tmp_path / "accel"
    accel.mkdir(exist_ok=True)
    (accel / "accel0").touch()
    monkeypatch.setenv("NPU_WHISPER_KERNELS", str(build))
    monkeypatch.setenv("NPU_WHISPER_ACCEL_DIR", str(accel))
    monkeypatch.setenv("PATH", str(tmp_path / "nobin"))  # no xrt-smi here unless a test adds one
    return mod


def random_encoder(n_mels: int, n_ctx: int, d: int, h: int, layers: int, seed: int = 0) -> AudioEncoder:
    torch.manual_seed(seed)
    enc = AudioEncoder(n_mels, n_ctx, d, h, layers).eval()
    with torch.no_grad():  # non-trivial LayerNorm parameters
        for m in enc.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return enc


def random_mel(n_mels: int, n_ctx: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_mels, 2 * n_ctx, generator=g).clamp(-1.5, 1.5)

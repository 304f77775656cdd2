"""Other ways to run Whisper on a CPU, for end-to-end comparisons in the same process.

- ``openai``: openai-whisper's own ``transcribe`` on the untouched reference model
  (``load_whisper_model(name)``, fp32, its PyTorch decoder with kv-cache hooks).
- ``faster-whisper``: SYSTRAN's faster-whisper (CTranslate2) at int8 on the packaged
  CTranslate2 folders; optional (``pip install npu-whisper[peers]``). When it is not
  installed the peer reports ``available=False`` with the reason and is skipped.
- ``faster-whisper-batched``: the same model through its ``BatchedInferencePipeline``
  (Silero VAD chunks, batch 8), what faster-whisper recommends for long audio.
- ``whisper.cpp``: ggml's whisper.cpp through ``pywhispercpp`` (PyPI, optional extra
  ``peers``) on our own checkpoint written in its ggml format (``model/ggml.py``, fp16
  matrices: the same weights).

Every peer gets the same 16 kHz float32 arrays and the same decoding options
(language, greedy or beam, temperatures, condition_on_previous_text).
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PEER_NAMES = ("openai", "faster-whisper", "faster-whisper-batched", "whisper.cpp")


class PeerUnavailable(RuntimeError):
    """The peer cannot run here (package missing, no weights); the message says why."""


@dataclass
class DecodeSettings:
    """The options every runner gets (openai-whisper's names)."""

    language: str = "en"
    temperatures: tuple[float, ...] = (0.0,)
    beam_size: int | None = None
    condition_on_previous_text: bool = True


class OpenAIWhisperPeer:
    name = "openai"

    def __init__(self, model: str) -> None:
        import torch

        from .model.resolve import load_whisper_model

        self.model = load_whisper_model(model)
        self.threads = torch.get_num_threads()
        self.description = f"openai-whisper transcribe, fp32, {self.threads} threads"

    def transcribe(self, audio: np.ndarray, settings: DecodeSettings) -> str:
        import whisper

        kwargs: dict[str, Any] = dict(
            language=settings.language if self.model.is_multilingual else "en",
            temperature=settings.temperatures,
            condition_on_previous_text=settings.condition_on_previous_text,
            fp16=False,
            verbose=None,
        )
        if settings.beam_size is not None:
            kwargs["beam_size"] = settings.beam_size
        return whisper.transcribe(self.model, audio, **kwargs)["text"]

    def close(self) -> None:
        pass


def faster_whisper_available() -> tuple[bool, str]:
    if importlib.util.find_spec("faster_whisper") is None:
        return False, "faster-whisper is not installed (pip install 'npu-whisper[peers]')"
    return True, ""


def ct2_folder(model: str, workdir: Path) -> Path:
    """A CTranslate2 folder for ``model`` usable by ctranslate2: the packaged one, with a
    split ``model.bin`` joined into ``workdir``."""
    from .model.resolve import resolve_model

    src = resolve_model(model)
    if src.kind != "ct2":
        raise PeerUnavailable(f"no CTranslate2 weights for {model!r} (found {src.kind} at {src.path})")
    if not src.parts:
        return Path(src.path)
    out = workdir / f"{src.name}-ct2"
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(src.path).iterdir():
        if f.is_file() and not f.name.startswith("model.bin"):
            shutil.copy2(f, out / f.name)
    with open(out / "model.bin", "wb") as dst:
        for part in src.parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, dst, 16 << 20)
    return out


class FasterWhisperPeer:
    name = "faster-whisper"

    def __init__(self, model: str, compute_type: str = "int8", threads: int | None = None) -> None:
        ok, why = faster_whisper_available()
        if not ok:
            raise PeerUnavailable(why)
        import torch
        from faster_whisper import WhisperModel

        self._tmp = tempfile.TemporaryDirectory(prefix="npu-whisper-ct2-")
        folder = ct2_folder(model, Path(self._tmp.name))
        self.threads = threads or torch.get_num_threads()
        self.model = WhisperModel(str(folder), device="cpu", compute_type=compute_type, cpu_threads=self.threads, local_files_only=True)
        self.description = f"faster-whisper (CTranslate2) {compute_type}, {self.threads} threads"

    def transcribe(self, audio: np.ndarray, settings: DecodeSettings) -> str:
        segments, _info = self.model.transcribe(
            audio,
            language=settings.language,
            beam_size=settings.beam_size or 1,
            best_of=5,
            temperature=list(settings.temperatures),
            condition_on_previous_text=settings.condition_on_previous_text,
            vad_filter=False,
        )
        return "".join(s.text for s in segments)

    def close(self) -> None:
        self.model = None
        self._tmp.cleanup()


class FasterWhisperBatchedPeer(FasterWhisperPeer):
    name = "faster-whisper-batched"

    def __init__(self, model: str, compute_type: str = "int8", batch_size: int = 8) -> None:
        super().__init__(model, compute_type)
        from faster_whisper import BatchedInferencePipeline

        self.batch_size = batch_size
        self.pipeline = BatchedInferencePipeline(self.model)
        self.description = f"faster-whisper BatchedInferencePipeline {compute_type}, batch {batch_size}, {self.threads} threads"

    def transcribe(self, audio: np.ndarray, settings: DecodeSettings) -> str:
        segments, _info = self.pipeline.transcribe(
            audio,
            language=settings.language,
            beam_size=settings.beam_size or 1,
            best_of=5,
            temperature=list(settings.temperatures),
            batch_size=self.batch_size,
        )
        return "".join(s.text for s in segments)

    def close(self) -> None:
        self.pipeline = None
        super().close()


def whispercpp_available() -> tuple[bool, str]:
    if importlib.util.find_spec("pywhispercpp") is None:
        return False, "pywhispercpp is not installed (pip install 'npu-whisper[peers]')"
    return True, ""


class WhisperCppPeer:
    """whisper.cpp (pywhispercpp) on our checkpoint in ggml format (fp16 matrices)."""

    name = "whisper.cpp"

    def __init__(self, model: str, threads: int | None = None) -> None:
        ok, why = whispercpp_available()
        if not ok:
            raise PeerUnavailable(why)
        import torch
        from pywhispercpp.model import Model

        from .model.ggml import ggml_for

        self.threads = threads or torch.get_num_threads()
        self.path = ggml_for(model)
        self.model = Model(str(self.path), redirect_whispercpp_logs_to=None, n_threads=self.threads, print_progress=False, print_realtime=False)
        self.description = f"whisper.cpp (pywhispercpp) f16 on our {model} weights, {self.threads} threads"

    def transcribe(self, audio: np.ndarray, settings: DecodeSettings) -> str:
        temps = list(settings.temperatures)
        inc = (temps[1] - temps[0]) if len(temps) > 1 else 0.0
        params: dict[str, Any] = dict(
            language=settings.language, temperature=temps[0], temperature_inc=inc,
            no_context=not settings.condition_on_previous_text,
        )
        if settings.beam_size:  # its sampling strategy is fixed when the model is made
            raise PeerUnavailable("the whisper.cpp peer runs greedy only")
        segments = self.model.transcribe(np.ascontiguousarray(audio, np.float32), **params)
        return " ".join(s.text.strip() for s in segments)

    def close(self) -> None:
        self.model = None


def make_peer(name: str, model: str) -> Any:
    """Build a peer by name; raises :class:`PeerUnavailable` with the reason."""
    if name == "openai":
        return OpenAIWhisperPeer(model)
    if name in ("faster-whisper", "faster_whisper", "ct2"):
        return FasterWhisperPeer(model)
    if name in ("faster-whisper-batched", "fw-batched"):
        if not faster_whisper_available()[0]:
            raise PeerUnavailable(faster_whisper_available()[1])
        return FasterWhisperBatchedPeer(model)
    if name in ("whisper.cpp", "whispercpp", "pywhispercpp"):
        return WhisperCppPeer(model)
    raise PeerUnavailable(f"unknown peer {name!r}; choose from {', '.join(PEER_NAMES)}")

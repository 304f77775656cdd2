"""Voice-activity detection: Silero VAD (v5/v6 ONNX model) through onnxruntime.

Why Silero and not WebRTC's VAD: Silero is a small neural model (~2 MB, < 1 ms per
32 ms frame on one core) trained on thousands of hours of speech *and noise*; it keeps
its speech probability low on stationary noise (white, pink, brown, fans, hum) and on
breathing, where WebRTC's GMM VAD (``webrtcvad``) fires on most broadband noise at
any aggressiveness and needs a C build (no wheels for current Pythons). Silero's model
file comes from the ``silero-vad`` PyPI package (its ``data/silero_vad.onnx``); we run
it with ``onnxruntime`` directly, without importing that package's torch code (its
``__init__`` sets torch's thread count to 1 for the whole process).

:class:`SileroVAD` is streaming: feed any number of 16 kHz samples, get one speech
probability per complete 512-sample (32 ms) frame. When the model or onnxruntime is
missing, :func:`create_vad` falls back to :class:`EnergyVAD` (a plain level gate) and
says so.

Quiet microphones: Silero's probability falls with the input level (read speech scaled to
-65 dBFS RMS, peaks near -50 dBFS, gave no speech frame at all on jfk.flac), while Whisper
still transcribes such audio correctly. :class:`LevelNormalizer` therefore brings each
frame *seen by the VAD* (not the audio Whisper decodes, nor the recording) up towards
speech level: the gain follows a peak-hold envelope of the frame level (instant attack,
slow release), never attenuates and is capped, so loud input is untouched and digital
silence stays far below speech level. Silero's own noise rejection does the rest: white,
pink and brown noise from -20 to -90 dBFS and breathing still give no speech frames.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE

FRAME = 512  # samples per VAD frame at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame the v5+ model sees


class VADUnavailable(Exception):
    pass


def silero_model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise VADUnavailable("the silero-vad package is not installed (pip install silero-vad)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "silero_vad.onnx"
        if p.exists():
            return p
    raise VADUnavailable("silero-vad is installed but its silero_vad.onnx is missing")


class LevelNormalizer:
    """Per-frame gain for the VAD's input: ``target_db - envelope``, clamped to
    ``[0, max_gain_db]``. The envelope is the frame RMS level with instant attack and a
    release of ``release_db_per_s``, so the gain set by speech holds through the short
    gaps between words, and rises only slowly in long silence."""

    def __init__(self, target_db: float = -30.0, max_gain_db: float = 40.0, release_db_per_s: float = 5.0, floor_db: float = -85.0) -> None:
        self.target_db = target_db
        self.max_gain_db = max_gain_db
        self.floor_db = floor_db
        self._release = release_db_per_s * FRAME / SAMPLE_RATE
        self.reset()

    def reset(self) -> None:
        self.envelope_db = -120.0
        self.gain_db = 0.0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        db = 20.0 * np.log10(np.sqrt(np.mean(np.square(frame, dtype=np.float64))) + 1e-12)
        self.envelope_db = max(db, self.envelope_db - self._release)
        self.gain_db = float(np.clip(self.target_db - max(self.envelope_db, self.floor_db), 0.0, self.max_gain_db))
        if self.gain_db <= 0.0:
            return frame
        return frame * np.float32(10.0 ** (self.gain_db / 20.0))

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """``__call__`` over the rows of ``frames[N, FRAME]`` at once (the same gains up to
        float rounding): the envelope's recursion ``e_i = max(db_i, e_{i-1} - r)`` is
        ``max(cummax_j(db_j + j r), e_{-1} - r) - i r``."""
        n = frames.shape[0]
        if n == 0:
            return frames
        db = 20.0 * np.log10(np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1)) + 1e-12)
        ir = np.arange(n, dtype=np.float64) * self._release
        env = np.maximum(np.maximum.accumulate(db + ir), self.envelope_db - self._release) - ir
        gain = np.clip(self.target_db - np.maximum(env, self.floor_db), 0.0, self.max_gain_db)
        self.envelope_db, self.gain_db = float(env[-1]), float(gain[-1])
        scale = np.where(gain > 0.0, 10.0 ** (gain / 20.0), 1.0).astype(np.float32)
        return frames * scale[:, None]


class SileroVAD:
    """Streaming Silero VAD; ``process(samples) -> np.ndarray`` of per-frame probabilities.

    ``normalize`` (default on): frames pass through a :class:`LevelNormalizer` first, so
    quiet microphones are heard (``frame_prob`` itself takes the frame as given)."""

    name = "silero"

    def __init__(self, model_path: str | Path | None = None, threads: int = 1, normalize: bool = True) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise VADUnavailable(f"onnxruntime is not installed ({exc})") from None
        path = Path(model_path) if model_path else silero_model_path()
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.normalizer: LevelNormalizer | None = LevelNormalizer() if normalize else None
        self.reset()

    def reset(self) -> None:
        if self.normalizer is not None:
            self.normalizer.reset()
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def frame_prob(self, frame: np.ndarray) -> float:
        x = np.concatenate([self._context, frame.astype(np.float32, copy=False)])[None, :]
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[0, -CONTEXT:].copy()
        return float(out[0, 0])

    def process(self, samples: np.ndarray) -> np.ndarray:
        data = np.concatenate([self._pending, np.asarray(samples, np.float32).reshape(-1)])
        n = data.size // FRAME
        probs = np.empty(n, np.float32)
        norm = self.normalizer
        for i in range(n):
            frame = data[i * FRAME : (i + 1) * FRAME]
            probs[i] = self.frame_prob(norm(frame) if norm is not None else frame)
        self._pending = data[n * FRAME :].copy()
        return probs


class EnergyVAD:
    """Fallback gate: probability from the frame's level against a slowly tracked noise floor."""

    name = "energy"

    def __init__(self, margin_db: float = 12.0, floor_db: float = -50.0) -> None:
        self.margin_db = margin_db
        self.min_floor = floor_db
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, np.float32)
        self._noise = self.min_floor

    def process(self, samples: np.ndarray) -> np.ndarray:
        data = np.concatenate([self._pending, np.asarray(samples, np.float32).reshape(-1)])
        n = data.size // FRAME
        probs = np.empty(n, np.float32)
        for i in range(n):
            f = data[i * FRAME : (i + 1) * FRAME]
            db = 20 * np.log10(np.sqrt(np.mean(f.astype(np.float64) ** 2)) + 1e-9)
            # the floor follows quiet frames quickly and loud ones slowly
            rate = 0.2 if db < self._noise else 0.002
            self._noise = max(self.min_floor, self._noise + rate * (db - self._noise))
            probs[i] = 1.0 / (1.0 + np.exp(-(db - self._noise - self.margin_db) / 2.0))
        self._pending = data[n * FRAME :].copy()
        return probs


def create_vad(kind: str = "silero", on_notice=None):
    """``silero`` (default; falls back to ``energy`` with a notice) or ``energy``."""
    if kind == "energy":
        return EnergyVAD()
    try:
        return SileroVAD()
    except VADUnavailable as exc:
        if on_notice is not None:
            on_notice(f"Silero VAD unavailable ({exc}); using a plain level gate instead")
        return EnergyVAD()

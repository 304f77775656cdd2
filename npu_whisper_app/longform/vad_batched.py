"""Silero VAD over a whole recording in a few calls, for the batched long-form mode.

The streaming model (``live.vad.SileroVAD``) runs one onnxruntime call per 32 ms frame,
carrying the LSTM state from frame to frame: 0.62 s of a 3-minute job's 3.06 s. Only the
LSTM needs that order. Silero's network is ``stft -> encoder`` (convolutions over one
frame and its 64 samples of context, no state) ``-> LSTM cell -> 1x1 conv -> sigmoid``,
so here the frames of a block go through the stft and the encoder as one batch, the LSTM
runs over the block's frames as one ``nn.LSTM`` call (the cell's own weights; the state
carried across blocks) and the output layer as one batch again. The same computation as
faster-whisper's split encoder/decoder model and silero-vad's own ``sequence`` model;
the probabilities match the streaming model's within float rounding (tested: < 1e-4).

The network comes from the silero-vad package's TorchScript file (``silero_vad.jit``, the
model the package's own ``load_silero_vad()`` returns); where its layout is not the one
read here, :func:`create_batched_vad` falls back to the streaming model and says so.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..live.vad import CONTEXT, FRAME, LevelNormalizer, SileroVAD, VADUnavailable, silero_model_path

BLOCK_FRAMES = 8192  # frames per batched call (~4.4 min of audio, ~19 MB of input)


@lru_cache(maxsize=1)
def _network() -> tuple[Any, torch.nn.LSTM, Any]:
    """(stft -> encoder, the LSTM with the cell's weights, output layer) of the 16 kHz model."""
    path = silero_model_path().with_name("silero_vad.jit")
    if not path.exists():
        raise VADUnavailable(f"{path.name} is missing from the silero-vad package")
    try:
        net = torch.jit.load(str(path), map_location="cpu").eval()._model
        stft, encoder, cell, head = net.stft, net.encoder, net.decoder.rnn, net.decoder.decoder
        w = dict(cell.state_dict())
        lstm = torch.nn.LSTM(w["weight_hh"].shape[1], w["weight_hh"].shape[1])
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(lstm, f"{name}_l0").copy_(w[name])
    except (AttributeError, KeyError, RuntimeError) as exc:
        raise VADUnavailable(f"silero_vad.jit has another layout than the one read here ({exc})") from None
    lstm.eval()

    def features(x: torch.Tensor) -> torch.Tensor:
        return encoder(stft(x)).squeeze(-1)

    return features, lstm, head


class BatchedSileroVAD:
    """Silero probabilities a block of frames at a time; the streaming interface of
    :class:`~npu_whisper_app.live.vad.SileroVAD` (``process``/``reset``), the same
    level normalisation of the VAD's input."""

    name = "silero-batched"

    def __init__(self, normalize: bool = True) -> None:
        self._features, self._lstm, self._head = _network()
        self.normalizer: LevelNormalizer | None = LevelNormalizer() if normalize else None
        self.reset()

    def reset(self) -> None:
        if self.normalizer is not None:
            self.normalizer.reset()
        self._hc: tuple[torch.Tensor, torch.Tensor] | None = None
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, np.float32).reshape(-1)
        # a whole recording given as one array is read in place, not copied behind the
        # few samples left from the last call
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n = data.size // FRAME
        self._pending = data[n * FRAME :].copy()
        out = [self._block(data[i * FRAME : min(n, i + BLOCK_FRAMES) * FRAME]) for i in range(0, n, BLOCK_FRAMES)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _block(self, samples: np.ndarray) -> np.ndarray:
        frames = samples.reshape(-1, FRAME)
        if self.normalizer is not None:
            frames = self.normalizer.frames(frames)
        x = np.empty((frames.shape[0], CONTEXT + FRAME), np.float32)
        x[0, :CONTEXT] = self._context
        x[1:, :CONTEXT] = frames[:-1, -CONTEXT:]
        x[:, CONTEXT:] = frames
        self._context = frames[-1, -CONTEXT:].copy()
        with torch.inference_mode():
            feats = self._features(torch.from_numpy(x))  # [N, 128]
            h, self._hc = self._lstm(feats[:, None, :], self._hc)
            probs = self._head(h.squeeze(1).unsqueeze(-1)).reshape(-1)
        return probs.numpy()


def create_batched_vad(on_notice=None) -> BatchedSileroVAD | SileroVAD | Any:
    """The batched Silero VAD; the streaming one (then the level gate) where it cannot load."""
    from ..live.vad import create_vad

    try:
        return BatchedSileroVAD()
    except VADUnavailable as exc:
        if on_notice is not None:
            on_notice(f"batched Silero VAD unavailable ({exc}); running it a frame at a time")
        return create_vad("silero", on_notice)

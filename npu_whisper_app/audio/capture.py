"""Microphone capture through PortAudio (sounddevice), delivered as 16 kHz mono float32.

The PortAudio callback only queues raw blocks; a consumer thread resamples them
(PyAV's resampler, streaming), writes them to the recording's WAV file first, and
then hands them to ``on_block``. A failing consumer never loses the recording.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .decode import SAMPLE_RATE
from .wavwriter import WavWriter

BlockFn = Callable[[np.ndarray], None]


class MicrophoneError(Exception):
    """No usable input device, PortAudio missing, or the device went away."""


@dataclass
class InputDevice:
    index: int
    name: str
    channels: int
    default_samplerate: float
    is_default: bool

    def label(self) -> str:
        return f"{self.name}{' (default)' if self.is_default else ''}"


def _sd():
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio library itself is missing
        raise MicrophoneError(f"PortAudio is not available ({exc}); install libportaudio2") from None
    except ImportError as exc:
        raise MicrophoneError(f"sounddevice is not installed ({exc})") from None
    return sounddevice


def list_input_devices() -> list[InputDevice]:
    """Every PortAudio device with input channels."""
    sd = _sd()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except Exception as exc:
        raise MicrophoneError(f"cannot list audio devices: {exc}") from None
    out = []
    for i, d in enumerate(devices):
        if d.get("max_input_channels", 0) > 0:
            out.append(InputDevice(i, d["name"], int(d["max_input_channels"]), float(d["default_samplerate"]), i == default_in))
    return out


def dbfs(block: np.ndarray) -> float:
    """RMS level of a block in dB full scale (-120 for silence)."""
    if block.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
    return max(-120.0, 20.0 * np.log10(rms + 1e-12))


class _Resampler:
    """Streaming float32 mono resampler to 16 kHz (PyAV / libswresample)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._pts = 0
        if rate != SAMPLE_RATE:
            import av

            self._av = av
            self._r = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def __call__(self, block: np.ndarray | None) -> np.ndarray:
        if self.rate == SAMPLE_RATE:
            return np.zeros(0, np.float32) if block is None else block
        if block is None:
            frames = self._r.resample(None)
        else:
            frame = self._av.AudioFrame.from_ndarray(np.ascontiguousarray(block[None, :]), format="flt", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self._pts
            self._pts += block.size
            frames = self._r.resample(frame)
        parts = [f.to_ndarray().reshape(-1) for f in frames]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


class Microphone:
    """Record from an input device; optionally to a WAV file, always to ``on_block``.

    ``device`` is a PortAudio index or name (None: the default input).
    """

    def __init__(
        self,
        device: int | str | None = None,
        on_block: BlockFn | None = None,
        wav_path: str | Path | None = None,
        block_seconds: float = 0.05,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.device = device
        self.on_block = on_block
        self.on_error = on_error
        self.wav_path = Path(wav_path) if wav_path else None
        self.block_seconds = block_seconds
        self.level_dbfs = -120.0
        self.samples = 0
        self.error: str | None = None
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue()
        self._stream = None
        self._thread: threading.Thread | None = None
        self._writer: WavWriter | None = None
        self._started_at = 0.0

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        sd = _sd()
        try:
            info = sd.query_devices(self.device, "input")
        except Exception as exc:
            raise MicrophoneError(f"no such input device {self.device!r}: {exc}") from None
        rate = int(info["default_samplerate"]) or SAMPLE_RATE
        # prefer 16 kHz when the device takes it; else its own rate, resampled here
        try:
            sd.check_input_settings(device=self.device, channels=1, dtype="int16", samplerate=SAMPLE_RATE)
            rate = SAMPLE_RATE
        except Exception:
            pass
        self._resample = _Resampler(rate)

        def callback(indata, frames, time_info, status) -> None:  # PortAudio thread
            self._queue.put(indata[:, 0].astype(np.float32) / 32768.0)

        try:
            self._stream = sd.InputStream(
                # 16-bit is what capture hardware delivers natively; ALSA's own
                # float conversion (plug) drops samples at period boundaries
                device=self.device, channels=1, dtype="int16", samplerate=rate,
                blocksize=max(1, int(rate * self.block_seconds)), callback=callback,
                finished_callback=lambda: self._queue.put(None),
            )
        except Exception as exc:
            raise MicrophoneError(f"cannot open input device {info['name']!r}: {exc}") from None
        if self.wav_path is not None:
            self._writer = WavWriter(self.wav_path)
        self._thread = threading.Thread(target=self._consume, name="microphone", daemon=True)
        self._thread.start()
        self._started_at = time.monotonic()
        self._stream.start()

    def _consume(self) -> None:
        while True:
            raw = self._queue.get()
            block = self._resample(raw)
            if block.size:
                if self._writer is not None:
                    self._writer.write(block)  # the recording first: it must survive
                self.samples += block.size
                self.level_dbfs = dbfs(block)
                if self.on_block is not None:
                    try:
                        self.on_block(block)
                    except Exception as exc:  # a consumer bug must not stop the recording
                        self._report(f"audio consumer failed: {type(exc).__name__}: {exc}")
            if raw is None:
                break
        if self._writer is not None:
            self._writer.close()

    def _report(self, message: str) -> None:
        self.error = message
        if self.on_error is not None:
            self.on_error(message)

    def stop(self) -> Path | None:
        """Stop capturing; returns the WAV path (complete and closed)."""
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception as exc:
                self._report(f"input device stopped with an error: {exc}")
            finally:
                self._queue.put(None)
            self._stream = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._writer is not None:
            self._writer.close()
        return self.wav_path

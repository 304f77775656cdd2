"""Audio sources for dictation: the microphone, or a recording played as if it were one.

Both deliver 16 kHz mono float32 blocks to ``on_block`` from their own thread, tell
``on_error`` when they fail (a device unplugged, a file unreadable) and ``on_end`` when a
recording has been played to its end. ``stop()`` is idempotent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..audio.decode import SAMPLE_RATE, load_audio

# one VAD frame (512 samples): the end of speech is seen as soon as its frame is complete
# (50 ms blocks held it back up to 18 ms more, 9 ms on average)
BLOCK_S = 0.032

BlockFn = Callable[[np.ndarray], None]
ErrorFn = Callable[[str], None]


class AudioSource:
    name = "source"

    def start(self, on_block: BlockFn, on_error: ErrorFn, on_end: Callable[[], None]) -> None:  # pragma: no cover
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover
        raise NotImplementedError


class FilePlayer(AudioSource):
    """Play ``audio`` (an array or a file path) at ``speed`` times real time in blocks.

    ``fail_after_s`` makes the source fail after that many seconds of audio (to test
    what happens when a device goes away).
    """

    def __init__(
        self,
        audio: np.ndarray | str | Path,
        speed: float = 1.0,
        block_s: float = BLOCK_S,
        fail_after_s: float | None = None,
    ) -> None:
        self.name = str(audio) if not isinstance(audio, np.ndarray) else "<audio>"
        self.audio = audio if isinstance(audio, np.ndarray) else load_audio(audio)
        self.speed = speed
        self.block = max(1, int(block_s * SAMPLE_RATE))
        self.fail_after = None if fail_after_s is None else int(fail_after_s * SAMPLE_RATE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def start(self, on_block: BlockFn, on_error: ErrorFn, on_end: Callable[[], None]) -> None:
        def run() -> None:
            t0 = time.monotonic()
            pos = 0
            try:
                while pos < len(self.audio) and not self._stop.is_set():
                    if self.fail_after is not None and pos >= self.fail_after:
                        raise OSError("simulated: the input device was unplugged")
                    block = self.audio[pos : pos + self.block]
                    pos += len(block)
                    if self.speed > 0:
                        due = t0 + pos / SAMPLE_RATE / self.speed
                        delay = due - time.monotonic()
                        if delay > 0 and self._stop.wait(delay):
                            break
                    on_block(block)
                    self.delivered = pos
            except Exception as exc:
                on_error(f"{type(exc).__name__}: {exc}")
                return
            if not self._stop.is_set():
                on_end()

        self._thread = threading.Thread(target=run, name="file-player", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


class MicSource(AudioSource):
    """The microphone (:class:`~npu_whisper_app.audio.capture.Microphone`, no WAV of its
    own: the dictation session writes the recording). A stream that ends while we did
    not ask (device unplugged) is reported as an error."""

    def __init__(self, device: int | str | None = None, block_s: float = BLOCK_S) -> None:
        self.device = device
        self.block_s = block_s
        self.name = f"microphone {device if device is not None else '(default)'}"
        self._mic = None
        self._stopping = False
        self._watch: threading.Thread | None = None

    def start(self, on_block: BlockFn, on_error: ErrorFn, on_end: Callable[[], None]) -> None:
        from ..audio.capture import Microphone

        self._mic = Microphone(self.device, on_block=on_block, block_seconds=self.block_s, on_error=on_error)
        self._mic.start()  # raises MicrophoneError
        mic = self._mic

        def watch() -> None:
            thread = mic._thread
            while thread is not None and thread.is_alive() and not self._stopping:
                thread.join(0.2)
            if not self._stopping:
                on_error(mic.error or "the input device stopped delivering audio (unplugged?)")

        self._watch = threading.Thread(target=watch, name="mic-watch", daemon=True)
        self._watch.start()

    @property
    def level_dbfs(self) -> float:
        return self._mic.level_dbfs if self._mic is not None else -120.0

    def stop(self) -> None:
        self._stopping = True
        if self._mic is not None:
            self._mic.stop()

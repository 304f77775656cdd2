"""A dictation session: audio source -> ring buffer (+ WAV) -> VAD/segmenter thread ->
decoder thread (partials about once a second, one final per utterance).

Threads:

* the source's thread calls :meth:`DictationSession.feed`: it copies the block into the
  ring buffer and the WAV file and wakes the segmenter. It never waits on decoding.
* ``dictation-vad``: runs the VAD over new audio and cuts utterances; an ended
  utterance's audio is copied out of the ring and queued as a final job.
* ``dictation-decoder``: the only thread that asks the decoder (an
  :class:`~npu_whisper_app.live.decoder.UtteranceDecoder`: in the app its calls run on
  the engine's owner thread, ahead of file work). Finals come first; a partial in
  progress is cancelled (between encoder dispatches) as soon as a final is queued. Otherwise, while an utterance is open, it decodes the audio so far about every
  ``partial_interval_s`` and reports the words the last two hypotheses agree on.

Everything reaches the caller through ``on_event(event)`` (called from the session's
threads): :class:`Partial`, :class:`Final`, :class:`Level`, :class:`Notice`.

Nothing is lost: the audio goes to a WAV file as it streams (header valid after every
flush), each final line is appended to a transcript file beside it, and a failing
source or decoder ends the session with what was said and recorded kept
(:attr:`finished` is set; call :meth:`stop` for the :class:`SessionResult`).
"""

from __future__ import annotations

import bisect
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..audio.wavwriter import WavWriter
from .decoder import Cancelled, Decoded
from .ringbuffer import RingBuffer
from .segmenter import DEFAULT_PAD_MS, Segmenter, SegmenterOptions, SegmentEvent
from .stabilize import LocalAgreement
from .vad import FRAME, create_vad

TRANSCRIBE_FINAL_PAD_MS = 64


@dataclass
class DictationOptions:
    # give the previous utterances' text as the prompt: off by default, since a prompt
    # changes the words (7 of 9 eval-dev utterances read as their file alone, against 9 of 9)
    prompt_previous: bool = False
    partial_interval_s: float = 1.0
    min_partial_s: float = 0.6  # no partial before the utterance has this much audio
    partials: bool = True
    # start the final decode as soon as the trailing pad of silence is in, and use it if
    # the pause then lasts (same audio, same prompt: the same result, ~0.3 s sooner)
    speculative: bool = True
    vad: str = "silero"
    # segmenter.pad_ms None: the trailing pad the final needs. The transcribe final keeps
    # every eval-dev utterance's words with 64 ms (and 40-200 ms); the window final's WER
    # rose from 0.093 to 0.130 with 96 ms, so it keeps 200 ms. Each is waited for.
    segmenter: SegmenterOptions = field(default_factory=SegmenterOptions)
    ring_seconds: float = 60.0
    wav_path: str | Path | None = None  # None: a new file in default_dictation_dir()
    transcript: bool = True  # append final lines to <wav>.txt
    # the final decode for this session ("window" | "transcribe", see live/decoder.py);
    # None: the decoder's own option
    final: str | None = None
    level_interval_s: float = 0.05


# -- events ------------------------------------------------------------------------------
@dataclass
class Partial:
    index: int
    start_s: float
    stable: str  # words the last two hypotheses agree on
    tail: str  # the newest hypothesis's remaining (unstable) words
    audio_s: float  # utterance audio decoded


@dataclass
class Final:
    index: int
    start_s: float
    end_s: float
    text: str  # "" when dropped
    dropped: str | None
    no_speech_prob: float
    avg_logprob: float
    decode_s: float
    speech_end_sample: int  # end of the last speech frame (VAD)
    decided_at: float  # time.monotonic() when decided


@dataclass
class Level:
    dbfs: float


@dataclass
class Notice:
    message: str
    error: bool = False


@dataclass
class SessionResult:
    finals: list[Final]
    wav_path: Path
    transcript_path: Path | None
    audio_s: float
    errors: list[str]

    @property
    def text(self) -> str:
        return " ".join(f.text for f in self.finals if f.text)


def default_dictation_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("npu-whisper")) / "dictation"


def new_wav_path(folder: str | Path | None = None) -> Path:
    folder = Path(folder) if folder else default_dictation_dir()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"dictation-{stamp}.wav"
    i = 1
    while path.exists():
        path = folder / f"dictation-{stamp}-{i}.wav"
        i += 1
    return path


def fmt_time(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    h, m = divmod(int(m), 60)
    return f"{h:02d}:{m:02d}:{s:06.3f}" if h else f"{m:02d}:{s:06.3f}"


class DictationSession:
    """``decoder`` is an :class:`~npu_whisper_app.live.decoder.UtteranceDecoder`
    (``decode(audio, prompt=None, should_stop=None, partial=False) -> Decoded``); ``source`` is an
    :class:`~npu_whisper_app.live.sources.AudioSource`."""

    def __init__(self, decoder, source, options: DictationOptions | None = None, on_event: Callable[[object], None] | None = None) -> None:
        self.decoder = decoder
        self.source = source
        self.options = options or DictationOptions()
        self.on_event = on_event
        o = self.options
        if o.final is not None and hasattr(getattr(decoder, "options", None), "final"):
            decoder.options.final = o.final
        self.ring = RingBuffer(int(o.ring_seconds * SAMPLE_RATE))
        self.vad = create_vad(o.vad, on_notice=self._notice)
        self.segmenter = Segmenter(self._segmenter_options())
        self.wav_path = Path(o.wav_path) if o.wav_path else new_wav_path()
        self.transcript_path = self.wav_path.with_suffix(".txt") if o.transcript else None
        self._wav: WavWriter | None = None
        self.finals: list[Final] = []
        self.errors: list[str] = []
        self.finished = threading.Event()  # source ended or failed, or the decoder failed
        self.level_dbfs = -120.0
        self._arrivals: tuple[list[int], list[float]] = ([], [])
        self._cond = threading.Condition()
        self._input_closed = False
        self._stopping = False
        self._jobs: queue.Queue = queue.Queue()  # final jobs: (SegmentEvent, audio) or None
        self._open: SegmentEvent | None = None
        self._open_lock = threading.Lock()
        self._agreement = LocalAgreement()
        self._decoder_failed = False
        self._last_level = 0.0
        self._in_pause = False
        self._spec_gen = 0
        self._spec_for: int | None = None
        self.speculative_started = 0  # speculative final decodes begun (a pause that did not last: cancelled)
        self.speculative_used = 0
        self._peak_rms = 0.0
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopped: SessionResult | None = None

    def _segmenter_options(self) -> SegmenterOptions:
        seg = self.options.segmenter
        if seg.pad_ms is not None:
            return seg
        final = getattr(getattr(self.decoder, "options", None), "final", None)
        return replace(seg, pad_ms=TRANSCRIBE_FINAL_PAD_MS if final == "transcribe" else DEFAULT_PAD_MS)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._wav = WavWriter(self.wav_path)
        if self.transcript_path is not None:
            self.transcript_path.write_text("", encoding="utf-8")
        self._threads = [
            threading.Thread(target=self._vad_loop, name="dictation-vad", daemon=True),
            threading.Thread(target=self._decode_loop, name="dictation-decoder", daemon=True),
        ]
        for t in self._threads:
            t.start()
        self._started = True
        try:
            self.source.start(self.feed, self._source_error, self._source_end)
        except Exception as exc:
            self._notice(f"cannot start {getattr(self.source, 'name', 'the source')}: {exc}", error=True)
            self.finished.set()
            self.stop()
            if self.ring.end == 0:  # nothing was recorded: leave no empty files behind
                for path in (self.wav_path, self.transcript_path):
                    if path is not None:
                        path.unlink(missing_ok=True)
            raise

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)

    def stop(self, timeout: float = 60.0) -> SessionResult:
        """Stop the source, decode what was said (the open utterance too), close the WAV."""
        if self._stopped is not None:
            return self._stopped
        self._stopping = True
        try:
            self.source.stop()
        except Exception as exc:
            self._notice(f"the source stopped with an error: {exc}", error=True)
        with self._cond:
            self._input_closed = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            self._notice("decoding did not finish in time; the recording is kept", error=True)
        if self._wav is not None:
            self._wav.close()
        self.finished.set()
        self._stopped = SessionResult(list(self.finals), self.wav_path, self.transcript_path, self.ring.end / SAMPLE_RATE, list(self.errors))
        return self._stopped

    # -- audio side (source thread) ------------------------------------------------------
    def feed(self, block: np.ndarray) -> None:
        block = np.asarray(block, np.float32).reshape(-1)
        if block.size == 0 or self._input_closed:
            return
        if self._wav is not None:
            self._wav.write(block)  # the recording first
        end = self.ring.write(block)
        now = time.monotonic()
        self._arrivals[0].append(end)
        self._arrivals[1].append(now)
        with self._cond:
            self._cond.notify_all()
        rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
        self._peak_rms = max(self._peak_rms, rms)  # the loudest block since the last report
        if now - self._last_level >= self.options.level_interval_s:
            self._last_level = now
            self.level_dbfs = max(-120.0, 20 * np.log10(self._peak_rms + 1e-12))
            self._peak_rms = 0.0
            self._emit(Level(self.level_dbfs))

    def arrival_time(self, sample: int) -> float | None:
        """When (monotonic) the block holding ``sample`` was fed."""
        ends, times = self._arrivals
        i = bisect.bisect_right(ends, sample)
        return times[i] if i < len(times) else None

    def _source_error(self, message: str) -> None:
        self._notice(f"audio source failed: {message}; what was said and recorded is kept", error=True)
        self.finished.set()

    def _source_end(self) -> None:
        self.finished.set()

    # -- VAD thread ----------------------------------------------------------------------
    def _vad_loop(self) -> None:
        pos = 0
        try:
            while True:
                with self._cond:
                    while self.ring.end <= pos and not self._input_closed:
                        self._cond.wait(0.5)
                    closed = self._input_closed
                end = self.ring.end
                if end > pos:
                    first, audio = self.ring.read_clamped(pos, end)
                    if first > pos:
                        audio = audio[self._skip_lost(pos, first) - first :]
                    pos = end
                    for ev in self.segmenter.push(self.vad.process(audio)):
                        self._segment_event(ev)
                    seg = self.segmenter
                    self._in_pause = seg.open is not None and seg.silence_run > 0
                    if self._spec_for is not None and seg.open is not None and seg.open.index == self._spec_for and seg.silence_run < seg.pad_frames:
                        self._spec_gen += 1  # speech resumed: the speculative decode is moot
                        self._spec_for = None
                if closed and self.ring.end <= pos:
                    for ev in self.segmenter.flush():
                        self._segment_event(ev)
                    break
        except Exception as exc:  # pragma: no cover - a bug; keep the recording
            self._notice(f"voice detection failed: {type(exc).__name__}: {exc}", error=True)
            self.finished.set()
        finally:
            self._jobs.put(None)

    def _skip_lost(self, pos: int, first: int) -> int:
        """The input ran a whole ring ahead of voice detection (a source far faster than
        real time, or a starved machine): what was overwritten is skipped, from the next
        frame boundary on; it is still in the recording. Returns that boundary."""
        frame = -(-first // FRAME)
        for ev in self.segmenter.skip_to(frame):
            self._segment_event(ev)
        self.vad.reset()
        self._notice(f"voice detection fell {(first - pos) / SAMPLE_RATE:.1f} s behind the input; that audio was skipped (the recording has it)")
        return frame * FRAME

    def _segment_event(self, ev: SegmentEvent) -> None:
        if ev.kind == "start":
            with self._open_lock:
                self._open = ev
            return
        if ev.kind == "pause":
            if self.options.speculative:
                self._spec_gen += 1
                self._spec_for = ev.index
                self._jobs.put(("spec", ev, self.ring.read_clamped(ev.start, ev.end)[1], self._spec_gen))
            return
        self._spec_for = None
        with self._open_lock:
            self._open = None
        if ev.kind == "end":
            ev.start, audio = self.ring.read_clamped(ev.start, ev.end)
            if len(audio):
                self._jobs.put(("final", ev, audio, None))

    # -- decoder thread ------------------------------------------------------------------
    def _decode_loop(self) -> None:
        prompt_parts: list[str] = []
        spec: tuple | None = None
        last_partial = 0.0
        partial_for = -1
        try:
            while True:
                try:
                    job = self._jobs.get(timeout=0.02)
                except queue.Empty:
                    job = False
                if job is None:
                    break
                if job is not False:
                    kind, ev, audio, gen = job
                    prompt = " ".join(prompt_parts) if self.options.prompt_previous else None
                    key = (ev.index, ev.start, ev.end, prompt)
                    if kind == "spec":
                        if gen != self._spec_gen:
                            continue
                        self.speculative_started += 1
                        try:
                            spec = (key, self.decoder.decode(audio, prompt=prompt, should_stop=lambda g=gen: self._stopping or g != self._spec_gen))
                        except Cancelled:
                            continue
                        continue
                    if spec is not None and spec[0] == key:
                        d: Decoded = spec[1]  # decoded while the pause was still growing
                        self.speculative_used += 1
                    else:
                        d = self.decoder.decode(audio, prompt=prompt)
                    spec = None
                    final = Final(
                        ev.index, ev.start / SAMPLE_RATE, ev.end / SAMPLE_RATE, d.text, d.dropped,
                        d.no_speech_prob, d.avg_logprob, d.elapsed_s, ev.speech_end or ev.end, time.monotonic(),
                    )
                    if final.text:
                        prompt_parts.append(final.text)
                        del prompt_parts[:-8]
                        self.finals.append(final)
                        self._append_transcript(final)
                    self._agreement.reset()
                    self._emit(final)
                    continue
                if not self.options.partials or self._stopping:
                    continue
                with self._open_lock:
                    open_ev = self._open
                if open_ev is None or self._in_pause:
                    continue
                if open_ev.index != partial_for:
                    partial_for = open_ev.index
                    self._agreement.reset()
                    last_partial = 0.0
                now = time.monotonic()
                n = self.ring.end - open_ev.start
                if now - last_partial < self.options.partial_interval_s or n < self.options.min_partial_s * SAMPLE_RATE:
                    continue
                last_partial = now
                audio = self.ring.read_clamped(open_ev.start, open_ev.start + n)[1]
                prompt = " ".join(prompt_parts) if self.options.prompt_previous else None
                try:
                    d = self.decoder.decode(audio, prompt=prompt, should_stop=self._partial_should_stop, partial=True)
                except Cancelled:
                    continue
                with self._open_lock:
                    still_open = self._open is not None and self._open.index == open_ev.index
                if not still_open:
                    continue
                if d.dropped and d.dropped != "empty":
                    continue  # a partial judged not speech is not shown nor compared
                stable, tail = self._agreement.update(d.text)
                self._emit(Partial(open_ev.index, open_ev.start / SAMPLE_RATE, stable, tail, len(audio) / SAMPLE_RATE))
        except Exception as exc:
            self._decoder_failed = True
            self._notice(
                f"the decoder failed ({type(exc).__name__}: {exc}); dictation stopped. "
                f"The text so far and the recording ({self.wav_path}) are kept",
                error=True,
            )
            self.finished.set()

    def _partial_should_stop(self) -> bool:
        return self._stopping or not self._jobs.empty()

    # -- output --------------------------------------------------------------------------
    def _append_transcript(self, final: Final) -> None:
        if self.transcript_path is None:
            return
        try:
            with open(self.transcript_path, "a", encoding="utf-8") as f:
                f.write(f"[{fmt_time(final.start_s)} --> {fmt_time(final.end_s)}] {final.text}\n")
        except OSError as exc:
            self._notice(f"cannot write the transcript file: {exc}", error=True)

    def _notice(self, message: str, error: bool = False) -> None:
        if error:
            self.errors.append(message)
        self._emit(Notice(message, error))

    def _emit(self, event: object) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a broken listener must not stop dictation
            pass

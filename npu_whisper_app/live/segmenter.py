"""Cut a stream of VAD frame probabilities into utterances.

Hysteresis: a frame with probability >= ``threshold`` is speech; once inside an
utterance, frames >= ``neg_threshold`` keep it open. The utterance ends after
``min_silence_ms`` of frames below ``neg_threshold`` (the pause that makes text final),
or is cut at ``max_utterance_s`` (Whisper sees at most 30 s). Utterances with less than
``min_speech_ms`` of speech frames are discarded (clicks, a cough). ``pad_ms`` of audio
is kept before the first and after the last speech frame.

A ``pause`` event comes as soon as the trailing pad of silence is in (``pad_ms`` after the
last speech frame): the utterance *would* end exactly there if the pause lasts, so its
final decode can start early (speculatively) and be used if the ``end`` event follows
with the same bounds.

All positions are absolute sample indices of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from .vad import FRAME, SAMPLE_RATE

DEFAULT_PAD_MS = 200


@dataclass
class SegmenterOptions:
    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_silence_ms: int = 500
    min_speech_ms: int = 200
    # kept after the last speech frame (waited for: adds latency); None: DEFAULT_PAD_MS,
    # or what the dictation session picks for its final decode (live/dictation.py)
    pad_ms: int | None = None
    # kept before the first speech frame. Costs no latency (the audio is in the ring
    # buffer) and gives Whisper the lead-in a file has: with 200 ms, 8 of 9 eval-dev
    # utterances transcribed as their file alone did; with 300-600 ms, 9 of 9
    pre_pad_ms: int = 400
    max_utterance_s: float = 28.0


@dataclass
class SegmentEvent:
    kind: str  # "start" | "pause" | "end" | "discard"
    index: int  # utterance number (0, 1, ...)
    start: int  # first sample of the utterance (padded)
    end: int | None = None  # one past its last sample (padded); for "end"/"discard"
    speech_end: int | None = None  # end of the last speech frame (unpadded)
    speech_frames: int = 0
    forced: bool = False  # cut at max_utterance_s rather than by a pause


class Segmenter:
    def __init__(self, options: SegmenterOptions | None = None) -> None:
        self.options = options or SegmenterOptions()
        o = self.options
        self._pad = int((DEFAULT_PAD_MS if o.pad_ms is None else o.pad_ms) * SAMPLE_RATE / 1000)
        self._pre_pad = int(o.pre_pad_ms * SAMPLE_RATE / 1000)
        self._silence_frames = max(1, round(o.min_silence_ms * SAMPLE_RATE / 1000 / FRAME))
        self._min_speech_frames = max(1, round(o.min_speech_ms * SAMPLE_RATE / 1000 / FRAME))
        self._max_samples = int(o.max_utterance_s * SAMPLE_RATE)
        self._pad_frames = -(-self._pad // FRAME)
        self.frame_index = 0  # next frame's number
        self.index = 0
        self.open: SegmentEvent | None = None  # the open utterance's start event
        self._last_speech_end = 0
        self._silence_run = 0
        self._speech_frames = 0
        self._prev_end = 0  # no utterance starts before the previous one's end

    @property
    def silence_run(self) -> int:
        """Non-speech frames since the open utterance's last speech frame."""
        return self._silence_run

    @property
    def pad_frames(self) -> int:
        return self._pad_frames

    @property
    def position(self) -> int:
        """Samples covered by the frames seen so far."""
        return self.frame_index * FRAME

    def push(self, probs) -> list[SegmentEvent]:
        o = self.options
        events: list[SegmentEvent] = []
        for p in probs:
            f_start = self.frame_index * FRAME
            f_end = f_start + FRAME
            self.frame_index += 1
            if self.open is None:
                if p >= o.threshold:
                    start = max(self._prev_end, f_start - self._pre_pad)
                    self.open = SegmentEvent("start", self.index, start)
                    self._last_speech_end = f_end
                    self._silence_run = 0
                    self._speech_frames = 1
                    events.append(self.open)
                continue
            if p >= o.neg_threshold:
                self._silence_run = 0
                self._last_speech_end = f_end
                if p >= o.threshold:
                    self._speech_frames += 1
            else:
                self._silence_run += 1
                if self._silence_run == self._pad_frames and self._pad_frames < self._silence_frames:
                    if self._speech_frames >= self._min_speech_frames:
                        events.append(
                            SegmentEvent("pause", self.open.index, self.open.start, self._last_speech_end + self._pad, self._last_speech_end, self._speech_frames)
                        )
            if self._silence_run >= self._silence_frames:
                events.append(self._close(min(f_end, self._last_speech_end + self._pad), forced=False))
            elif f_end + FRAME - self.open.start > self._max_samples:
                events.append(self._close(f_end, forced=True))
        return events

    def skip_to(self, frame: int) -> list[SegmentEvent]:
        """The audio before ``frame`` was never analysed (the reader fell a whole ring
        behind the input): close the open utterance where speech was last seen, and go
        on from ``frame``."""
        events: list[SegmentEvent] = []
        if self.open is not None:
            events.append(self._close(min(self.position, self._last_speech_end + self._pad), forced=True))
        self.frame_index = max(self.frame_index, frame)
        self._silence_run = 0
        return events

    def flush(self) -> list[SegmentEvent]:
        """End of stream: close the open utterance at what was seen."""
        if self.open is None:
            return []
        return [self._close(min(self.position, self._last_speech_end + self._pad), forced=True)]

    def _close(self, end: int, forced: bool) -> SegmentEvent:
        assert self.open is not None
        kind = "end" if self._speech_frames >= self._min_speech_frames else "discard"
        ev = SegmentEvent(kind, self.open.index, self.open.start, end, self._last_speech_end, self._speech_frames, forced)
        self.open = None
        self.index += 1
        self._prev_end = end
        self._silence_run = 0
        self._speech_frames = 0
        return ev

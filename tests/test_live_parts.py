"""Live dictation building blocks, no Whisper weights: ring buffer, Silero VAD,
segmenter, local agreement, file player, and the session with a stand-in decoder
(decoder crash, source failure, stop, WAV)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from media import EVAL_DEV

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.live.decoder import Decoded
from npu_whisper_app.live.dictation import DictationOptions, DictationSession, Final, Notice, Partial
from npu_whisper_app.live.ringbuffer import RingBuffer
from npu_whisper_app.live.segmenter import Segmenter, SegmenterOptions
from npu_whisper_app.live.sources import FilePlayer
from npu_whisper_app.live.stabilize import LocalAgreement
from npu_whisper_app.live.vad import FRAME, SileroVAD

SR = 16000


def noises(seconds: float, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    white = rng.standard_normal(n)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    pink = np.fft.irfft(spec / np.sqrt(f), n)
    brown = np.fft.irfft(spec / f, n)
    out = {}
    for name, x, level in (("white", white, 0.05), ("pink", pink, 0.1), ("brown", brown, 0.2)):
        out[name] = (x / np.max(np.abs(x)) * level).astype(np.float32)
    return out


def test_ring_buffer_wraps_and_reads_by_absolute_index() -> None:
    rb = RingBuffer(10)
    rb.write(np.arange(7, dtype=np.float32))
    rb.write(np.arange(7, 15, dtype=np.float32))
    assert rb.end == 15 and rb.start == 5
    assert rb.read(5, 15).tolist() == list(range(5, 15))
    assert rb.read(12).tolist() == [12, 13, 14]
    with pytest.raises(IndexError):
        rb.read(4, 8)
    rb.write(np.arange(100, 125, dtype=np.float32))  # larger than the ring
    assert rb.end == 40 and rb.read(30, 40).tolist() == list(range(115, 125))


def test_local_agreement_shows_only_the_agreed_prefix() -> None:
    la = LocalAgreement()
    assert la.update("and so my") == ("", "and so my")
    assert la.update("And so, my fellow")[0] == "And so, my"
    stable, tail = la.update("and so my fellow Americans")
    assert stable == "and so my fellow" and tail == "Americans"
    # a later hypothesis that disagrees does not take back what was shown
    assert la.update("and so my fellow American ask")[0] == "and so my fellow"


def test_silero_vad_finds_speech_and_ignores_noise() -> None:
    vad = SileroVAD()
    jfk = load_audio(EVAL_DEV / "jfk.flac")
    p = vad.process(jfk)
    assert len(p) == len(jfk) // FRAME
    assert (p > 0.5).mean() > 0.5
    for name, x in noises(20).items():
        vad.reset()
        assert (vad.process(x) > 0.5).mean() < 0.02, name
    vad.reset()
    assert vad.process(np.zeros(SR * 5, np.float32)).max() < 0.2


def test_segmenter_cuts_at_pauses_with_padding() -> None:
    seg = Segmenter(SegmenterOptions(min_silence_ms=480, pad_ms=192, pre_pad_ms=256, min_speech_ms=96))
    # 10 frames silence, 30 speech, 10 silence (320 ms: too short to end), 20 speech, 30 silence, 2 speech (a click)
    probs = [0.0] * 10 + [0.9] * 30 + [0.1] * 10 + [0.9] * 20 + [0.0] * 30 + [0.9] * 2 + [0.0] * 30
    events = seg.push(probs)
    kinds = [(e.kind, e.index) for e in events]
    # a pause (the trailing pad is in) comes at the 1st short silence too, then the end
    assert kinds == [("start", 0), ("pause", 0), ("pause", 0), ("end", 0), ("start", 1), ("discard", 1)]
    assert events[1].end == (40 + 6) * FRAME and events[2].end == events[3].end
    end = events[3]
    assert end.start == (10 - 8) * FRAME  # 256 ms = 8 frames of lead-in before
    assert end.speech_end == 70 * FRAME
    assert end.end == (70 + 6) * FRAME
    # the open utterance is closed at flush
    seg.push([0.9] * 10)
    (last,) = seg.flush()
    assert last.kind == "end" and last.forced


def test_segmenter_cuts_long_utterances() -> None:
    seg = Segmenter(SegmenterOptions(max_utterance_s=2.0))
    events = seg.push([0.9] * 200)  # 6.4 s of speech
    assert [e.kind for e in events].count("end") == 3
    assert all(e.end - e.start <= 2 * SR for e in events if e.kind == "end")


def test_file_player_paces_real_time() -> None:
    got: list[np.ndarray] = []
    ended: list[bool] = []
    p = FilePlayer(np.ones(SR // 2, np.float32), speed=1.0)
    t0 = time.monotonic()
    p.start(got.append, lambda m: None, lambda: ended.append(True))
    while not ended and time.monotonic() - t0 < 5:
        time.sleep(0.01)
    assert 0.45 < time.monotonic() - t0 < 1.0
    assert sum(len(b) for b in got) == SR // 2


class FakeDecoder:
    """Returns a fixed text per call; can be told to crash on the n-th final."""

    def __init__(self, crash_on: int | None = None) -> None:
        self.calls = 0
        self.finals = 0
        self.crash_on = crash_on

    def decode(self, audio, prompt=None, should_stop=None, partial=False) -> Decoded:
        self.calls += 1
        if not partial:
            self.finals += 1
            if self.crash_on is not None and self.finals >= self.crash_on:
                raise RuntimeError("injected decoder crash")
        return Decoded(f"utterance of {len(audio) / SR:.1f} s", 0.0, -0.1, 1.0, 30.0, 0.0)


def speech_sequence(n: int, gap_s: float = 1.5) -> np.ndarray:
    clip = load_audio(EVAL_DEV / "goforward.wav")
    gap = np.zeros(int(gap_s * SR), np.float32)
    return np.concatenate([gap] + [np.concatenate([clip, gap]) for _ in range(n)])


def run_session(tmp_path: Path, decoder, source, **kw):
    events: list[object] = []
    s = DictationSession(decoder, source, DictationOptions(wav_path=tmp_path / "d.wav", **kw), on_event=events.append)
    s.start()
    assert s.wait(60)
    return s.stop(), events


def test_session_finals_partials_and_wav(tmp_path: Path) -> None:
    audio = speech_sequence(3)
    dec = FakeDecoder()
    result, events = run_session(tmp_path, dec, FilePlayer(audio, speed=4.0))
    finals = [e for e in events if isinstance(e, Final)]
    assert dec.finals == 3  # each final is the speculative decode started at the pause
    assert len(finals) == 3 and all(f.text for f in finals)
    assert any(isinstance(e, Partial) for e in events)
    assert all(finals[i].end_s <= finals[i + 1].start_s for i in range(2))
    saved = load_audio(result.wav_path)
    assert len(saved) == len(audio) and np.max(np.abs(saved - audio)) < 1e-3
    assert len(result.transcript_path.read_text().splitlines()) == 3
    assert not result.errors


def test_decoder_crash_keeps_text_and_recording(tmp_path: Path) -> None:
    audio = speech_sequence(4)
    result, events = run_session(tmp_path, FakeDecoder(crash_on=3), FilePlayer(audio, speed=4.0))
    assert len(result.finals) == 2  # the two decided before the crash
    assert any(isinstance(e, Notice) and e.error and "decoder failed" in e.message for e in events)
    assert "injected decoder crash" in result.errors[0]
    assert len(result.transcript_path.read_text().splitlines()) == 2
    # everything played until the crash was noticed is in the WAV
    assert len(load_audio(result.wav_path)) >= 2.5 * len(audio) / 4


def test_source_failure_keeps_what_was_said(tmp_path: Path) -> None:
    audio = speech_sequence(3)
    # fails in the middle of the 2nd utterance: the 1st is final, the 2nd is decoded as far as it went
    clip_s = len(load_audio(EVAL_DEV / "goforward.wav")) / SR
    fail_at = 1.5 + clip_s + 1.5 + clip_s / 2
    result, events = run_session(tmp_path, FakeDecoder(), FilePlayer(audio, speed=4.0, fail_after_s=fail_at))
    assert any(isinstance(e, Notice) and e.error and "unplugged" in e.message for e in events)
    assert len(result.finals) == 2
    assert abs(len(load_audio(result.wav_path)) / SR - fail_at) < 0.1


def test_voice_detection_falling_a_ring_behind_skips_and_goes_on(tmp_path: Path) -> None:
    """A source far faster than real time with a slow VAD: the ring (1 s) is overwritten
    before it is read. The lost audio is skipped with a notice (not an error), detection
    goes on, and the recording keeps every sample."""
    audio = speech_sequence(3)
    events: list[object] = []
    s = DictationSession(FakeDecoder(), FilePlayer(audio, speed=40.0), DictationOptions(wav_path=tmp_path / "d.wav", ring_seconds=1.0), on_event=events.append)
    real = s.vad.process

    def slow(samples):
        time.sleep(0.05)
        return real(samples)

    s.vad.process = slow
    s.start()
    assert s.wait(60)
    result = s.stop()
    notices = [e for e in events if isinstance(e, Notice)]
    assert any("behind the input" in n.message and not n.error for n in notices), notices
    assert not result.errors
    assert len(load_audio(result.wav_path)) == len(audio)


def test_ring_read_clamped_never_fails() -> None:
    ring = RingBuffer(100)
    ring.write(np.arange(250, dtype=np.float32))
    first, got = ring.read_clamped(10, 160)
    assert first == 150 and np.array_equal(got, np.arange(150, 160, dtype=np.float32))
    with pytest.raises(IndexError):
        ring.read(10, 160)
    assert ring.read_clamped(200)[0] == 200 and len(ring.read_clamped(200)[1]) == 50


def test_segmenter_skip_closes_the_open_utterance() -> None:
    seg = Segmenter(SegmenterOptions(min_silence_ms=480, pad_ms=192, min_speech_ms=96))
    seg.push([0.0] * 5 + [0.9] * 20)
    (ev,) = seg.skip_to(1000)
    assert ev.kind == "end" and ev.forced and ev.end == 25 * FRAME  # only what was seen
    assert seg.position == 1000 * FRAME and seg.open is None
    assert [e.kind for e in seg.push([0.9] * 10 + [0.0] * 20)] == ["start", "pause", "end"]


def test_repetition_loop_is_recognised() -> None:
    from npu_whisper_app.live.decoder import repeats_block

    assert repeats_block("8 of spades 4 of clubs 8 of spades 4 of clubs")
    assert repeats_block("And so, my fellow Americans. And so my fellow Americans.")
    assert not repeats_block("five five")
    assert not repeats_block("ask not what your country can do for you, ask what you can do for your country")

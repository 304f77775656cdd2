"""Quiet microphones: read speech at -65 dBFS RMS (peaks near -50 dBFS) is heard by the
real Silero VAD and transcribed by real Whisper (tiny.en) as its file is; silence,
quiet and loud noise and breathing still give nothing; the quiet-microphone hint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media import EVAL_DEV
from test_live_parts import noises

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.live.dictation import DictationOptions, DictationSession, Final, Notice
from npu_whisper_app.live.levelhint import QuietMicMonitor
from npu_whisper_app.live.sources import FilePlayer
from npu_whisper_app.live.vad import SileroVAD

SR = 16000
CLIPS = ["jfk.flac", "goforward.wav", "forever.wav", "cards/005.wav"]


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x * 10 ** ((dbfs - rms_db(x)) / 20)).astype(np.float32)


def breathing(seconds: float, seed: int = 7) -> np.ndarray:
    """Breaths: band-passed noise (300-2500 Hz) swelling in and out every ~3.5 s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < 300) | (f > 2500)] = 0
    x = np.fft.irfft(spec, n)
    t = np.arange(n) / SR
    env = np.clip(np.sin(2 * np.pi * t / 3.5), 0, None) ** 2
    return (x / np.abs(x).max() * env * 0.05).astype(np.float32)


def speech_fraction(vad: SileroVAD, x: np.ndarray) -> float:
    vad.reset()
    return float((vad.process(x) > 0.5).mean())


def test_vad_hears_quiet_speech_only_with_level_normalisation() -> None:
    plain, normalised = SileroVAD(normalize=False), SileroVAD()
    for clip in CLIPS:
        loud = load_audio(EVAL_DEV / clip)
        quiet = at_level(loud, -65)
        assert 20 * np.log10(np.abs(quiet).max()) < -42  # peaks well below normal speech
        # with normalisation the quiet clip has about as many speech frames as the loud one
        assert speech_fraction(normalised, quiet) > 0.8 * speech_fraction(plain, loud), clip
    # without it, jfk at -65 dBFS has hardly a speech frame (the bug this fixes: 1 of 343)
    assert speech_fraction(plain, at_level(load_audio(EVAL_DEV / "jfk.flac"), -65)) < 0.01


@pytest.mark.parametrize("dbfs", [-20, -45, -65, -85])
def test_normalised_vad_still_ignores_noise_and_breathing(dbfs: int) -> None:
    vad = SileroVAD()
    for name, x in {**noises(30, seed=11), "breathing": breathing(30)}.items():
        assert speech_fraction(vad, at_level(x, dbfs)) < 0.01, (name, dbfs)
    assert speech_fraction(vad, np.zeros(10 * SR, np.float32)) == 0.0


# -- end to end: the session with the real VAD and real Whisper ---------------------------
@pytest.fixture(scope="module")
def engine():
    from npu_whisper_app.pipeline import Engine

    e = Engine("tiny.en", "cpu")
    yield e
    e.close()


def run_session(engine, audio: np.ndarray, tmp_path: Path, speed: float) -> tuple[list[Final], list[Notice]]:
    from npu_whisper_app.live.decoder import WhisperUtteranceDecoder

    events: list[object] = []
    monitor = QuietMicMonitor()

    def on_event(ev: object) -> None:
        events.append(ev)
        hint = monitor.on_event(ev)
        if hint is not None:
            events.append(hint)

    session = DictationSession(
        WhisperUtteranceDecoder(engine), FilePlayer(audio, speed=speed),
        DictationOptions(partials=False, wav_path=tmp_path / "rec.wav"), on_event=on_event,
    )
    session.start()
    session.wait(600)
    result = session.stop()
    assert result.errors == []
    return [e for e in events if isinstance(e, Final) and e.text], [e for e in events if isinstance(e, Notice)]


def norm_words(text: str) -> list[str]:
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()(text).split()


def test_quiet_recording_gives_its_words_and_one_quiet_hint(engine, tmp_path: Path) -> None:
    from npu_whisper_app.live.decoder import WhisperUtteranceDecoder

    rng = np.random.default_rng(2)
    room = lambda s: at_level(rng.standard_normal(int(s * SR)).astype(np.float32), -85)  # noqa: E731
    names = ["goforward.wav", "forever.wav", "cards/005.wav", "digits_2934z.wav"]  # no long pauses inside
    clips = [at_level(load_audio(EVAL_DEV / c), -65) for c in names]
    parts = [room(1.0)]
    for c in clips:
        parts += [c, room(1.5)]
    finals, notices = run_session(engine, np.concatenate(parts), tmp_path, speed=2.0)
    assert len(finals) == len(names), [f.text for f in finals]
    dec = WhisperUtteranceDecoder(engine)
    for f, c, name in zip(finals, clips, names):
        alone = dec.decode(c).text  # the quiet clip decoded as a whole, as a file is
        assert norm_words(f.text) == norm_words(alone), (name, f.text, alone)
    quiet = [n for n in notices if "very quiet" in n.message]
    assert len(quiet) == 1 and not quiet[0].error


def test_normal_level_gives_no_quiet_hint(engine, tmp_path: Path) -> None:
    audio = np.concatenate([np.zeros(SR, np.float32), load_audio(EVAL_DEV / "forever.wav"), np.zeros(SR, np.float32)])
    finals, notices = run_session(engine, audio, tmp_path, speed=2.0)
    assert len(finals) == 1 and norm_words(finals[0].text) == "feels like these days go on forever".split()
    assert not any("quiet" in n.message for n in notices)


@pytest.mark.parametrize("kind", ["silence", "quiet-white", "quiet-pink", "breathing"])
def test_sixty_seconds_without_speech_give_nothing(engine, tmp_path: Path, kind: str) -> None:
    if kind == "silence":
        audio = np.zeros(60 * SR, np.float32)
    elif kind == "breathing":
        audio = breathing(60)
    else:
        audio = at_level(noises(60, seed=4)[kind.split("-")[1]], -65)  # the gain is at its highest here
    finals, _ = run_session(engine, audio, tmp_path, speed=20.0)
    assert finals == []

"""The engine's owner thread: one engine for file jobs and dictation, typed events, and
dictation decodes that run between the windows of a long file job."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from media import EVAL_DEV

from npu_whisper_app import events as ev
from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.engine_host import EngineChoice, EngineHost, FileJob
from npu_whisper_app.jobs import Cancelled
from npu_whisper_app.live.decoder import DecoderOptions, WhisperUtteranceDecoder
from npu_whisper_app.pipeline import TranscribeOptions


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    return load_audio(EVAL_DEV / "jfk.flac")


class Stream:
    def __init__(self) -> None:
        self.events: list[object] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, e: object) -> None:
        with self.lock:
            self.events.append(e)
            self.threads.add(threading.current_thread().name)

    def of(self, kind: type) -> list:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]


def test_file_jobs_and_dictation_share_one_engine_on_one_thread(jfk, tmp_path) -> None:
    made: list[object] = []
    used_on: set[str] = set()

    def factory(model: str, device: str, on_notice):
        from npu_whisper_app.pipeline import Engine

        made.append(Engine(model, device, on_notice=on_notice))
        return made[-1]

    stream = Stream()
    host = EngineHost(factory, on_event=stream, warm_up=False)
    try:
        # a file long enough for three windows, so a dictation decode can come between them
        long = np.concatenate([jfk, np.zeros(8000, np.float32)] * 7)
        path = tmp_path / "long.wav"
        from npu_whisper_app.audio.wavwriter import WavWriter

        with WavWriter(path) as w:
            w.write(long)
        first_window = threading.Event()
        # openai-whisper's loop, window by window (dictation between batches of the
        # batched mode: tests/test_longform.py)
        opts = TranscribeOptions(language="en", temperature=(0.0,), batched=False)
        job = FileJob(str(path), model="tiny.en", device="cpu", options=opts)
        fut = host.run_job(job)
        # wait until the job has finished its first window, then ask for a dictation final
        while not stream.of(ev.Segment):
            assert not fut.done(), "the job ended before its first segment"
            first_window.wait(0.05)
        choice = EngineChoice(host, lambda: type("C", (), {"model": "tiny.en", "device": "cpu"}))
        dec = WhisperUtteranceDecoder(choice, DecoderOptions(final="window"))
        d = dec.decode(jfk)
        used_on.add(threading.current_thread().name)
        assert "ask not what your country" in d.text.lower()
        assert not fut.done(), "the dictation decode waited for the whole file job"
        result = fut.result(timeout=600)
    finally:
        host.close()
    assert len(made) == 1  # one model for both
    assert result is not None and result.text.lower().count("ask not what your country") == 7
    assert stream.threads == {"engine-owner"}  # every event, and so every engine call, came from the owner
    kinds = {type(e) for e in stream.events}
    assert {ev.EngineLoading, ev.EngineReady, ev.JobStarted, ev.Progress, ev.Segment, ev.Timings, ev.JobFinished} <= kinds
    timing_ids = {e.job_id for e in stream.of(ev.Timings)}
    assert timing_ids == {job.id, 0}  # the file job's batches, and the dictation decode's (0)
    assert not host.alive


def test_errors_reach_the_caller_and_the_host_keeps_running(jfk) -> None:
    stream = Stream()
    host = EngineHost(on_event=stream, warm_up=False)
    try:
        bad = host.run_job(FileJob("/nonexistent/recording.flac", model="tiny.en", device="cpu"))
        assert bad.result(timeout=600) is None
        failed = stream.of(ev.JobFailed)
        assert failed and "recording.flac" in failed[0].message
        with pytest.raises(Cancelled):
            host.decode_utterance(jfk, DecoderOptions(), should_stop=lambda: True, model="tiny.en", device="cpu")
        ok = host.decode_utterance(jfk, DecoderOptions(final="window"), model="tiny.en", device="cpu")
        assert "fellow americans" in ok.text.lower()
        # a load that fails is reported as an event and as the caller's exception
        from npu_whisper_app.catalog import ModelError

        with pytest.raises(ModelError):
            host.load("no-such-model", "cpu").result(timeout=600)
        assert stream.of(ev.EngineFailed)
    finally:
        host.close()

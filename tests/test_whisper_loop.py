"""model/whisper_loop.py: the one place that follows openai-whisper's internals.

It must fail loudly when the installed openai-whisper changes the parts we rely on, give
openai-whisper's own words and segments on the same model, and replace nothing in
openai-whisper's modules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import whisper
from media import EVAL_DEV, espeak

from npu_whisper_app.audio.decode import load_audio
from npu_whisper_app.jobs import Cancelled, JobContext
from npu_whisper_app.model import whisper_loop
from npu_whisper_app.model.resolve import load_whisper_model


def test_the_openai_whisper_sources_we_follow_are_unchanged() -> None:
    now = whisper_loop.relied_on_now()
    changed = {k: (v, now[k]) for k, v in whisper_loop.RELIED_ON.items() if now[k] != v}
    assert not changed, (
        f"openai-whisper {whisper.__version__} changed what model/whisper_loop.py follows "
        f"(name: (expected, now)): {changed}; read the new source, port the change, update RELIED_ON"
    )


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> np.ndarray:
    """About 50 s: several windows, so the previous-text prompt and seeking are exercised."""
    manifest = EVAL_DEV / "manifest.jsonl"
    if manifest.exists():
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        clips = [load_audio(EVAL_DEV / r["path"]) for r in rows if r.get("ref")]
    else:
        d = tmp_path_factory.mktemp("loop")
        clips = [load_audio(espeak("The quick brown fox jumps over the lazy dog.", d / "fox.wav"))]
    gap = np.zeros(8000, np.float32)
    out = np.concatenate([np.concatenate([c, gap]) for c in clips] * 2)
    while len(out) < 45 * 16000:
        out = np.concatenate([out, out])
    return out


@pytest.mark.parametrize(
    "kwargs",
    [dict(temperature=0.0), dict(temperature=(0.0, 0.4), word_timestamps=True, initial_prompt="Cards and digits.")],
    ids=["greedy", "fallback+words+prompt"],
)
def test_same_result_as_openai_whisper_transcribe(audio, kwargs) -> None:
    """The port on openai-whisper's own model and inference gives its result exactly."""
    import torch

    model = load_whisper_model("tiny.en")
    torch.manual_seed(0)  # a fallback temperature samples: the same draws for both
    want = whisper.transcribe(model, audio, language="en", fp16=False, **kwargs)
    torch.manual_seed(0)
    seen: list[dict] = []
    progress: list[tuple[float, float]] = []
    ctx = JobContext(on_segment=seen.append, on_progress=lambda d, t: progress.append((d, t)))
    got = whisper_loop.transcribe(model, whisper_loop.ArrayMel(audio, model.dims.n_mels), ctx=ctx, language="en", **kwargs)
    assert got["text"] == want["text"]
    assert [(s["start"], s["end"], s["tokens"]) for s in got["segments"]] == [(s["start"], s["end"], s["tokens"]) for s in want["segments"]]
    if kwargs.get("word_timestamps"):
        assert [w["word"] for s in got["segments"] for w in s["words"]] == [w["word"] for s in want["segments"] for w in s["words"]]
    # every segment reached the job as its window finished, in order, and progress grew to the end
    assert [s["id"] for s in seen] == [s["id"] for s in got["segments"]]
    assert len(progress) >= 2 and progress[-1][0] == pytest.approx(progress[-1][1])
    assert all(b[0] >= a[0] for a, b in zip(progress, progress[1:]))


def test_stops_between_windows_with_the_segments_so_far(audio) -> None:
    model = load_whisper_model("tiny.en")
    seen: list[dict] = []
    windows = []
    ctx = JobContext(on_segment=seen.append, should_stop=lambda: len(windows) >= 1, between_windows=lambda: windows.append(1))
    with pytest.raises(Cancelled):
        whisper_loop.transcribe(model, whisper_loop.ArrayMel(audio, model.dims.n_mels), ctx=ctx, language="en", temperature=0.0)
    assert len(windows) == 1 and seen  # one window's segments arrived, then it stopped


def test_nothing_in_openai_whisper_is_replaced() -> None:
    """Importing and running our engine leaves openai-whisper's modules as they ship."""
    import importlib

    import tqdm
    import whisper.decoding as wdec

    import npu_whisper_app.pipeline  # noqa: F401  (imports every engine module)

    assert importlib.import_module("whisper.transcribe").tqdm is tqdm
    assert wdec.PyTorchInference.__qualname__ == "PyTorchInference" and wdec.PyTorchInference.__module__ == "whisper.decoding"
    assert wdec.decode.__module__ == "whisper.decoding"

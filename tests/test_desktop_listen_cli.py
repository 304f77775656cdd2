"""``npu-whisper listen --input FILE --paste`` puts each final utterance into the focused
window of another X client, as the dictation service does (real Whisper tiny.en)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from desktop_helpers import Target, clipboard_text, set_clipboard, wait_for
from media import EVAL_DEV, write_wav

from npu_whisper_app.audio.decode import load_audio

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


def words(text: str) -> list[str]:
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()(text).split()


def test_listen_paste_types_into_the_other_application(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    room = lambda s: (rng.standard_normal(int(s * SR)) * 2e-3).astype(np.float32)  # noqa: E731
    clips = ["goforward.wav", "forever.wav"]
    path = write_wav(tmp_path / "two.wav", np.concatenate([room(0.5), load_audio(EVAL_DEV / clips[0]), room(1.5), load_audio(EVAL_DEV / clips[1]), room(1.5)]))
    target = Target(tmp_path)
    set_clipboard("kept")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "npu_whisper_app.cli", "listen", "--model", "tiny.en", "--device", "cpu", "--input", str(path),
             "--speed", "1.5", "--recording", str(tmp_path / "rec.wav"), "--paste"],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        printed = [line.split("] ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("[")]
        assert len(printed) == 2
        expected = words(" ".join(printed))
        assert expected == "go forward 10 meters feels like these days go on forever".split()
        wait_for(lambda: words(target.text()) == expected, 30, "the field")
        assert target.text() == " ".join(printed)  # joined with one space, nothing lost
        assert clipboard_text() == "kept"  # the user's clipboard is back
    finally:
        target.close()

"""A kernel build that was killed must not make every later start hang: torch's builder
waits without end on the ``lock`` file such a build leaves in the build folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_leftover_build_lock_does_not_hang_the_next_start() -> None:
    load = "from npu_whisper_app.devices import cpu_native as c; import sys; ok = c.DECODER_F16.load() is not None; print(c.DECODER_F16.build_dir()); sys.exit(0 if ok else 3)"
    first = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]  # built, or found in the cache
    leftover = Path(first.stdout.strip().splitlines()[-1]) / "lock"
    leftover.touch()  # what a build killed mid-way leaves behind
    r = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not leftover.exists()
    assert "left by a killed build" in r.stderr

"""A kernel build that was killed must not make every later start hang: torch's builder
waits without end on the ``lock`` file such a build leaves in the build folder."""

from __future__ import annotations

import subprocess
import sys

from npu_whisper_app.devices import cpu_native


def test_a_leftover_build_lock_does_not_hang_the_next_start() -> None:
    kernel = cpu_native.DECODER_F16
    assert kernel.load() is not None  # built (or loaded from the cache) in this process
    leftover = kernel.build_dir() / "lock"
    leftover.touch()  # what a build killed mid-way leaves behind
    code = "from npu_whisper_app.devices import cpu_native as c; import sys; sys.exit(0 if c.DECODER_F16.load() is not None else 3)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not leftover.exists()
    assert "left by a killed build" in r.stderr

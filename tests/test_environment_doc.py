"""Every NPU_WHISPER_* switch the code reads is in docs/environment.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_switch_is_documented() -> None:
    used = set()
    for path in (ROOT / "npu_whisper_app").rglob("*.py"):
        used |= set(re.findall(r"NPU_WHISPER_[A-Z0-9_]+", path.read_text()))
    documented = set(re.findall(r"^\| `(NPU_WHISPER_[A-Z0-9_]+)`", (ROOT / "docs" / "environment.md").read_text(), re.M))
    assert used, "no switches found: the scan is broken"
    assert sorted(used - documented) == []
    assert sorted(documented - used) == []  # no stale rows

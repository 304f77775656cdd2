"""The desktop app's resident memory with a file job and a dictation session (not a test).

Opens the real main window (Qt offscreen), transcribes a file, then dictates a recording
played at real-time pace through the dictation tab, and prints the process's resident
memory after each step and its peak. Run it on two checkouts to compare them:

    python benchmarks/app_memory.py [--model base] [--repo PATH_TO_OTHER_CHECKOUT]

With ``--repo`` the measurement runs in a subprocess that imports the app from that
checkout (e.g. a worktree of an older commit); without, from this one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
EVAL_DEV = HERE.parent / "shared" / "eval-dev"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(model: str, audio: str) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="npuw-mem-"))
    os.environ.update(NPU_WHISPER_SETTINGS=str(tmp / "s.ini"), NPU_WHISPER_DATA_DIR=str(tmp / "d"), NPU_WHISPER_LOG_DIR=str(tmp / "l"))
    from PySide6.QtWidgets import QApplication

    from npu_whisper_app.gui.settings import Settings

    s = Settings()
    c = s.load()
    c.model, c.device = model, "cpu"
    s.save(c)
    del s
    app = QApplication.instance() or QApplication([])
    from npu_whisper_app.gui.main_window import MainWindow

    def wait(cond, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    out: dict = {"start_mb": rss_mb()}
    w = MainWindow(dialogs=False)
    w.show()
    wait(lambda: w.engine_info is not None or bool(w.errors), 600)
    out["model_loaded_mb"] = rss_mb()
    w.open_file(audio)
    wait(lambda: bool(w.results), 600)
    out["after_file_job_mb"] = rss_mb()
    from npu_whisper_app.live.sources import FilePlayer

    d = w.dictation
    d.worker._source_factory = lambda _dev: FilePlayer(audio, speed=4.0)
    finals: list = []
    d.worker.final.connect(lambda *a: finals.append(a))
    d.start()
    wait(lambda: not d.running or len(finals) >= 1, 600)
    wait(lambda: False, 3.0)
    out["during_dictation_mb"] = rss_mb()
    d.stop()
    wait(lambda: not d.running, 120)
    out["finals"] = len(finals)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    w.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="base")
    ap.add_argument("--audio", default=str(EVAL_DEV / "jfk.flac"))
    ap.add_argument("--repo", default=None, help="measure the app of this checkout instead (run in a subprocess)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.repo:
        env = dict(os.environ, PYTHONPATH=str(Path(args.repo).resolve()))
        r = subprocess.run([sys.executable, __file__, "--model", args.model, "--audio", args.audio, "--json"], env=env, capture_output=True, text=True)
        if r.returncode:
            sys.exit(r.stderr[-3000:])
        result = json.loads(r.stdout.strip().splitlines()[-1])
    else:
        result = measure(args.model, args.audio)
    import npu_whisper_app

    result["code"] = str(Path(npu_whisper_app.__file__).parent.parent) if not args.repo else str(args.repo)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v:.0f} MB" if isinstance(v, float) else f"{k:>22}: {v}")


if __name__ == "__main__":
    main()

"""What the live performance panel costs the encoder.

Runs the real app window and worker on one recording, alternating jobs with the panel
attached (timing batches sent to the GUI and redrawn) and detached (no batches sent),
and prints the median encoder time of each and their ratio.

    xvfb-run -a python benchmarks/gui_overhead.py [--model base] [--runs 3] [FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
JFK = ROOT.parent / "shared" / "eval-dev" / "jfk.flac"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(JFK))
    ap.add_argument("--model", default="base")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="npu-whisper-bench-")
    os.environ.update(NPU_WHISPER_SETTINGS=f"{tmp}/s.ini", NPU_WHISPER_DATA_DIR=f"{tmp}/data", NPU_WHISPER_LOG_DIR=f"{tmp}/log")

    from PySide6.QtWidgets import QApplication

    _app = QApplication.instance() or QApplication([])  # noqa: F841  (kept alive for the windows)
    from npu_whisper_app.gui.main_window import MainWindow
    from npu_whisper_app.gui.settings import Settings

    s = Settings()
    c = s.load()
    c.model, c.device = args.model, args.device
    s.save(c)
    w = MainWindow(dialogs=False)
    w.resize(1400, 860)
    w.show()

    from PySide6.QtCore import QEventLoop, QTimer

    def wait(cond, timeout=600.0) -> None:
        """Run the real event loop (as the app does) until ``cond()``."""
        end = time.monotonic() + timeout
        loop = QEventLoop()
        check = QTimer()
        check.setInterval(20)
        check.timeout.connect(lambda: loop.quit() if cond() or time.monotonic() > end else None)
        check.start()
        if not cond():
            loop.exec()
        check.stop()
        if not cond():
            raise TimeoutError

    wait(lambda: w.engine_info is not None or bool(w.errors))
    if w.errors:
        print("error:", w.errors[-1])
        return 1
    times: dict[str, list[float]] = {"attached": [], "detached": []}
    redraws: list[int] = []
    w.transcribe(args.file)  # warm-up
    wait(lambda: not w.host.busy)
    for i in range(args.runs):
        for mode in ("detached", "attached") if i % 2 == 0 else ("attached", "detached"):
            attached = mode == "attached"
            w.host.worker.send_timings = attached
            (w.perf._timer.start if attached else w.perf._timer.stop)()
            before = w.perf.redraws
            job = w.transcribe(args.file)
            wait(lambda job=job: job.id in w.results or job.id not in w.jobs)
            r = w.results[job.id]
            times[mode].append(r.encoder_s)
            if attached:
                redraws.append(w.perf.redraws - before)
                rate = (w.perf.redraws - before) / r.elapsed_s
            print(f"{mode:9s} encoder {r.encoder_s:.3f} s  job {r.elapsed_s:.2f} s" + (f"  redraws {w.perf.redraws - before} ({rate:.1f}/s)" if attached else ""))
    a, d = statistics.median(times["attached"]), statistics.median(times["detached"])
    print(f"model {args.model} on {w.engine_info['device']}: median encoder time attached {a:.3f} s, detached {d:.3f} s")
    print(f"ratio attached/detached = {a / d:.3f}  (overhead {100 * (a / d - 1):+.1f} %)")
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Starts the desktop app if it is installed, else transcribes a sample with the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/npu-whisper-app ] && .venv/bin/python -c "import npu_whisper_app.gui.app" 2>/dev/null; then
  exec .venv/bin/npu-whisper-app "$@"
fi
sample="${1:-../shared/eval-dev/jfk.flac}"
exec .venv/bin/npu-whisper transcribe "$sample"

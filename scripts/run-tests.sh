#!/usr/bin/env bash
# Runs the test suite under a virtual X display (real xcb platform), as CI does.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null; then
  exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest "$@"

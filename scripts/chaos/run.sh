#!/usr/bin/env bash
# The fault-injection suite: runs every scripts/chaos/*.sh (this runner and lib.sh aside) on real
# mpirun jobs, passing the directory holding tptop and tptrain as $1. Each script prints one line
#   chaos <name>: injected …; detected …; outcome …; data lost …
# and exits non-zero when an expectation failed. Ends with `chaos: N passed, M failed`.
#   bash scripts/chaos/run.sh .build/release        (make chaos)
set -u
bin=$(cd "${1:-.build/release}" && pwd) || { echo "chaos: no build directory ${1:-.build/release}" >&2; exit 2; }
for tool in tptop tptrain; do
  [ -x "$bin/$tool" ] || { echo "chaos: $bin/$tool not found: build first (swift build -c release)" >&2; exit 2; }
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0
start=$(date +%s)
for script in "$here"/*.sh; do
  name=$(basename "$script" .sh)
  [ "$name" = run ] || [ "$name" = lib ] && continue
  # a script that hangs is a failure too; each runs in a few seconds to a minute
  if timeout -k 5 180 bash "$script" "$bin"; then
    passed=$((passed + 1))
  else
    echo "chaos $name: FAILED (exit $?)"
    failed=$((failed + 1))
  fi
done
echo "chaos: $passed passed, $failed failed ($(( $(date +%s) - start )) s)"
[ "$failed" -eq 0 ]

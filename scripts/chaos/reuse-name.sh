#!/usr/bin/env bash
# tptrain run directly (no tptop launch) under the name of a finished job: every rank agrees on
# the refusal and exits with one line; nothing hangs and the finished job's segment is untouched.
# Issue 25, item 6.
source "$(dirname "$0")/lib.sh"
train() { mpirun -np 2 "$tptrain" "${train_args[@]}" --job "$job" "$@"; }
train --steps 20 > /dev/null 2>&1 || fail "the first run failed"
before=$("$tptop" ls | awk -v j="$job" '$1 == j { print $2, $5 }')
[ "$before" = "finished 20/20" ] || fail "the first run reads '$before'"
t0=$(now_ms)
timeout -k 2 60 mpirun -np 2 "$tptrain" "${train_args[@]}" --job "$job" --steps 3 > "$work/second" 2>&1
status=$?
ms=$(( $(now_ms) - t0 ))
[ "$status" -eq 124 ] || [ "$status" -eq 137 ] && fail "the second run hung (killed after 60 s)"
[ "$status" -ne 0 ] || fail "the second run was accepted"
[ "$(grep -c '^tptrain: error' "$work/second")" -eq 1 ] || fail "not one error line: $(grep tptrain "$work/second")"
grep -q "^tptrain: error: segment /dev/shm/tptop.$job already exists; choose another --job name or run \`tptop gc\`" "$work/second" \
  || fail "unclear refusal: $(grep tptrain "$work/second")"
after=$("$tptop" ls | awk -v j="$job" '$1 == j { print $2, $5 }')
[ "$after" = "$before" ] || fail "the finished run now reads '$after'"
report "mpirun tptrain --job $job again after it finished" "the segment exists: every rank refuses, exit $status in ${ms} ms" \
  "one line naming the fix; no rank left waiting" "none (the finished run still reads finished 20/20)"

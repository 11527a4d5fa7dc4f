#!/usr/bin/env bash
# An incarnation that never creates its segment (here an "mpirun" that hangs before starting
# anything, as mpirun did once with PMIx UNREACHABLE): the supervisor's --start-timeout ends it
# and uses its restarts, instead of waiting forever. Issue 25, item 4.
source "$(dirname "$0")/lib.sh"
printf '#!/bin/sh\nexec sleep 600\n' > "$work/stuck-mpirun"
chmod +x "$work/stuck-mpirun"
t0=$(now_ms)
timeout 60 "$tptop" supervise --restart 1 --start-timeout 2 --np 2 --mpirun "$work/stuck-mpirun" -- \
  "${train_args[@]}" --steps 10 --job "$job" > "$work/sup" 2>&1
status=$?
ms=$(( $(now_ms) - t0 ))
[ "$status" -eq 124 ] && fail "the supervisor waited on (killed after 60 s)"
[ "$status" -ne 0 ] || fail "reported success"
[ "$(grep -c "hung: the job did not start within 2 s" "$work/sup")" -eq 2 ] || fail "$(grep supervise "$work/sup")"
grep -q "out of restarts (1)" "$work/sup" || fail "restarts not used: $(tail -1 "$work/sup")"
report "an mpirun that never starts tptrain, supervise --restart 1 --start-timeout 2" \
  "no segment 2 s after each launch: hung" "both incarnations ended, restarts used, exit $status after ${ms} ms" "none (nothing had started)"

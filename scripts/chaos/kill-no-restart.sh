#!/usr/bin/env bash
# kill -9 of one rank of a `tptop launch` job without --restart: the dashboard, `tptop ls` and
# `tptop launch` agree that the job failed, and launch exits non-zero naming the rank.
source "$(dirname "$0")/lib.sh"
mkfifo "$work/keys"
TERM=dumb "$tptop" launch --np 2 --tp 2 --job "$job" -- --model tiny --batch 4 --seq 32 --threads 1 --steps 1000000 \
  --quiet < "$work/keys" > "$work/out" 2>&1 &
launcher=$!
exec 3> "$work/keys"
wait_until 60 step_at_least "$job" 30 || fail "the job did not start"
victim=$(rank_pid "$job" 1)
[ -n "$victim" ] || fail "rank 1 of $job not found"
step=$(job_step "$job")
t0=$(now_ms)
kill -9 "$victim"
is_failed() { [ "$("$tptop" ls | awk -v j="$job" '$1 == j { print $2 }')" = failed ]; }
wait_until 30 is_failed || fail "ls does not say failed: $("$tptop" ls | grep "$job")"
ms=$(( $(now_ms) - t0 ))
echo q >&3
exec 3>&-
wait "$launcher"; status=$?
[ $status -ne 0 ] || fail "tptop launch exited 0 after the job failed"
grep -q "the job has ended: failed (rank 1)" "$work/out" || fail "launch does not say failed (rank 1): $(tail -2 "$work/out")"
grep -q "failed (rank 1)" "$work/out" || fail "the dashboard header does not say failed (rank 1)"
report "kill -9 of rank 1 at step ≈ $step, no --restart" "ls: failed after ${ms} ms (a dead rank counts once its heartbeat is 5 s old)" \
  "stopped: dashboard, ls and launch all say failed (rank 1); launch exit $status" "all steps since the last checkpoint (none requested); $(ring_loss "$job") records lost from the rings"

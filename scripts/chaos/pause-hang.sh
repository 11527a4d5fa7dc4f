#!/usr/bin/env bash
# A rank stopped (SIGSTOP) while the job is paused, then a resume: the supervisor counts the job
# as hung once that rank's heartbeat is old (it beats while paused; the stopped one does not)
# and restarts it, instead of waiting forever. Issue 25, item 3.
source "$(dirname "$0")/lib.sh"
jobs_to_collect+=("$job.r1")
"$tptop" supervise --restart 1 --hang-timeout 3 --np 2 -- "${train_args[@]}" --steps 100000 --job "$job" \
  --checkpoint-dir "$work/ck" --checkpoint-every 20 > "$work/sup" 2>&1 &
sup=$!
wait_until 60 step_at_least "$job" 25 || fail "the job did not start: $(tail -3 "$work/sup")"
"$tptop" pause "$job" > /dev/null || fail "could not pause"
victim=$(rank_pid "$job" 1)
kill -STOP "$victim"
t0=$(now_ms)
"$tptop" resume "$job" --no-wait > /dev/null || fail "could not ask for a resume"
wait_until 60 grep -q "incarnation 0 hung: rank 1" "$work/sup" || fail "no hang reported: $(grep supervise "$work/sup")"
ms=$(( $(now_ms) - t0 ))
wait_until 60 step_at_least "$job.r1" 22 || fail "no restart: $(grep supervise "$work/sup" | tail -2)"
"$tptop" stop "$job.r1" > /dev/null || fail "could not stop incarnation 1"
wait "$sup"; status=$?
[ "$status" -eq 0 ] || fail "supervisor exit $status"
report "pause, SIGSTOP of rank 1, resume, under supervise --hang-timeout 3" \
  "the supervisor: rank 1's heartbeat stopped while paused, hung after ${ms} ms (stall limit 5 s + 3 s)" \
  "restarted from the latest checkpoint as $job.r1" "the steps since that checkpoint; 0 records"

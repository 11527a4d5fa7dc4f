#!/usr/bin/env bash
# Every rank stopped at once (SIGSTOP), and rank 0 stopped while the job is paused: no rank waits
# in a collective, but heartbeats are the ranks' own, so `ls` says stalled and names the rank,
# `watch` prints a stalled line. Issue 25, item 5.
source "$(dirname "$0")/lib.sh"
mpirun -np 2 "$tptrain" "${train_args[@]}" --steps 100000 --job "$job" > "$work/run" 2>&1 &
wait_until 60 step_at_least "$job" 5 || fail "the job did not start"
r0=$(rank_pid "$job" 0) r1=$(rank_pid "$job" 1)
stalled() { "$tptop" ls | awk -v j="$job" '$1 == j && $2 == "stalled"' | grep -q "$1"; }
kill -STOP "$r0" "$r1"
t0=$(now_ms)
wait_until 30 stalled "every rank silent: the job is frozen" || fail "ls: $("$tptop" ls | grep "$job")"
ms=$(( $(now_ms) - t0 ))
timeout 5 "$tptop" watch "$job" > "$work/watch" 2>&1
grep -q "^stalled: rank [01]: no heartbeat for" "$work/watch" || fail "watch printed no stalled line: $(head -3 "$work/watch")"
kill -CONT "$r0" "$r1"
wait_until 30 bash -c "\"$tptop\" ls | awk -v j=$job '\$1 == j && \$2 == \"running\"' | grep -q ." || fail "not running again"
"$tptop" pause "$job" > /dev/null || fail "could not pause"
kill -STOP "$r0"
wait_until 30 stalled "rank 0: no heartbeat" || fail "rank 0 stopped while paused: ls $("$tptop" ls | grep "$job")"
kill -CONT "$r0"
"$tptop" resume "$job" > /dev/null || fail "could not resume"
"$tptop" stop "$job" > /dev/null || fail "could not stop"
report "SIGSTOP of both ranks; then of rank 0 while paused" "tptop ls: stalled ${ms} ms after the stop (5 s limit), watch: a stalled line" \
  "named stalled, not running or paused; after SIGCONT the job resumes and stops cleanly" "0 steps; 0 records"

#!/usr/bin/env bash
# `tptop launch --job NAME` while NAME runs: refused before anything starts, the fix in the
# message, the running job and its log untouched.
source "$(dirname "$0")/lib.sh"
TERM=dumb "$tptop" launch --np 2 --tp 2 --job "$job" -- --model tiny --batch 4 --seq 32 --threads 1 --steps 100000 \
  < /dev/null > "$work/first" 2>&1 || fail "first launch failed: $(cat "$work/first")"
wait_until 30 step_at_least "$job" 3 || fail "the first job did not start"
log=$TPTOP_LOG_DIR/$job.log
head1=$(head -2 "$log")
t0=$(now_ms)
TERM=dumb "$tptop" launch --np 2 --tp 2 --job "$job" -- --model tiny < /dev/null > "$work/second" 2>&1 && fail "the second launch was accepted"
ms=$(( $(now_ms) - t0 ))
grep -q "already running.*tptop stop $job" "$work/second" || fail "no fix in the message: $(cat "$work/second")"
[ "$(head -2 "$log")" = "$head1" ] || fail "the running job's log was replaced"
step=$(job_step "$job")
wait_until 10 step_at_least "$job" $(( step + 1 )) || fail "the running job stopped advancing"
"$tptop" stop "$job" > /dev/null || fail "could not stop the first job"
wait_until 30 bash -c "! pgrep -f -- '--job $job( |\$)' > /dev/null" || fail "the first job did not end"
TERM=dumb "$tptop" launch --np 2 --tp 2 --job "$job" -- --model tiny < /dev/null > "$work/third" 2>&1 && fail "a launch over the ended job was accepted"
grep -q "tptop gc $job" "$work/third" || fail "no gc hint for an ended job: $(cat "$work/third")"
report "a second launch --job $job while it runs" "segment $job exists, refused in ${ms} ms" \
  "refused (stop it or pick another --job; after it ended: tptop gc $job)" "none (the first job trained on, its log intact)"

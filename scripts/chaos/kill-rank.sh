#!/usr/bin/env bash
# kill -9 of one rank under `tptop supervise --restart 1`: the supervisor names the rank, restarts
# from the latest checkpoint, and the run ends with the same loss as an uninterrupted one.
source "$(dirname "$0")/lib.sh"
steps=800 every=150
ref=$(mpirun -np 2 "$tptrain" "${model_args[@]}" --steps $steps --no-telemetry 2>&1 | sed -n 's/^done: .*final loss \([0-9.]*\).*/\1/p')
[ -n "$ref" ] || fail "the uninterrupted reference run did not finish"
"$tptop" supervise --restart 1 --np 2 -- "${model_args[@]}" --steps $steps --job "$job" \
  --checkpoint-dir "$work/ck" --checkpoint-every $every > "$work/out" 2>&1 &
sup=$!
wait_until 120 step_at_least "$job" 200 || fail "the job did not reach step 200"
victim=$(rank_pid "$job" 1)
[ -n "$victim" ] || fail "rank 1 of $job not found"
t0=$(now_ms)
kill -9 "$victim"
wait_until 30 grep -q "incarnation 0 failed" "$work/out" || fail "the supervisor did not report the failure"
detect_ms=$(( $(now_ms) - t0 ))
wait "$sup"; status=$?
[ $status -eq 0 ] || fail "the supervised job ended with status $status: $(tail -3 "$work/out")"
grep -q "incarnation 0 failed.*rank 1 was killed by signal 9" "$work/out" || fail "rank 1 not named: $(grep failed "$work/out")"
died=$(sed -n 's/.*rank 1 was killed.* after step \([0-9]*\).*/\1/p' "$work/out" | head -1)
resumed=$(sed -n 's/^tptrain: resuming from .* at step \([0-9]*\).*/\1/p' "$work/out" | head -1)
final=$(sed -n 's/^done: .*final loss \([0-9.]*\).*/\1/p' "$work/out" | tail -1)
[ -n "$resumed" ] || fail "not resumed from a checkpoint"
[ "$final" = "$ref" ] || fail "final loss $final differs from the uninterrupted run's $ref"
report "kill -9 of rank 1 at step ${died:-?}" "mpirun's report, rank 1 named by the supervisor in ${detect_ms} ms" \
  "restarted from step_$resumed, final loss $final = uninterrupted run's" \
  "$(( ${died:-$resumed} - resumed )) steps since the last checkpoint; $(ring_loss "$job.r1") records lost from the rings"

#!/usr/bin/env bash
# A non-finite loss: --lr 1e30 blows the model up. The default policy stops with a non-zero exit
# and checkpoints nothing of the poisoned state; --on-nonfinite skip-step (with the test-only
# fault flag --fault-nonfinite-at, which puts a NaN in one step's gradient) skips and counts it.
source "$(dirname "$0")/lib.sh"
t0=$(now_ms)
mpirun -np 2 "$tptrain" "${train_args[@]}" --steps 50 --lr 1e30 --job "$job" \
  --checkpoint-dir "$work/ck" --checkpoint-every 1 > "$work/out" 2>&1
status=$?
ms=$(( $(now_ms) - t0 ))
[ $status -ne 0 ] || fail "the run exited 0"
line=$(grep "tptrain: error: non-finite" "$work/out") || fail "no non-finite error line: $(tail -3 "$work/out")"
bad=$(echo "$line" | sed -n 's/.* at step \([0-9]*\):.*/\1/p')
last=$(ls "$work/ck" | sed -n 's/^step_0*\([0-9][0-9]*\)$/\1/p' | sort -n | tail -1)
[ -n "$bad" ] && [ "${last:-0}" -lt "$bad" ] || fail "checkpoint step_$last of the poisoned step $bad"
state=$("$tptop" ls | awk -v j="$job" '$1 == j { print $2 }')
[ "$state" = failed ] || fail "ls says '$state', not failed"
mpirun -np 2 "$tptrain" "${model_args[@]}" --steps 10 --no-telemetry --on-nonfinite skip-step \
  --fault-nonfinite-at 4 > "$work/skip" 2>&1 || fail "skip-step run failed: $(tail -3 "$work/skip")"
grep -q "done: 10 steps.*1 skipped (non-finite)" "$work/skip" || fail "skip not counted: $(tail -1 "$work/skip")"
report "--lr 1e30 (loss non-finite at step $bad)" "by the trainer at that step, exit $status after ${ms} ms (job state failed)" \
  "stopped, no checkpoint after step ${last:-none}; skip-step skipped 1 poisoned step of 10" \
  "$(( bad - 1 - ${last:-0} )) steps since the last checkpoint; $(ring_loss "$job") records lost from the rings"

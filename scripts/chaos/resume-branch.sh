#!/usr/bin/env bash
# A resumed run is a new branch: resuming an earlier checkpoint into the directory that holds the
# first run's later ones is refused (nothing deleted or overwritten), a branch in a directory of
# its own records its parent, a run resumed from the latest prunes only its own checkpoints
# (never the checkpoint it resumed from, never the first run's), and --log continues from the
# resumed step instead of being emptied. Issue 25, items 1 and 2.
source "$(dirname "$0")/lib.sh"
run() { mpirun -np "$1" "$tptrain" --model tiny --tp 1 --batch 4 --seq 32 --threads 1 --quiet --no-telemetry "${@:2}"; }
ck=$work/ck log=$work/run.jsonl
run 1 --steps 50 --checkpoint-dir "$ck" --checkpoint-every 10 --keep-checkpoints 4 --log "$log" > /dev/null 2>&1 \
  || fail "the first run failed"
first=$(ls "$ck" | tr '\n' ' ')
[ "$first" = "step_00000020 step_00000030 step_00000040 step_00000050 " ] || fail "first run left: $first"
# the issue's reproduction: back to step 20, into the same directory
t0=$(now_ms)
run 1 --resume "$ck/step_00000020" --checkpoint-every 5 --steps 28 --log "$log" > "$work/branch" 2>&1 \
  && fail "a branch over the first run's later checkpoints was accepted"
ms=$(( $(now_ms) - t0 ))
grep -q "already holds step_00000030, step_00000040, step_00000050 of another run.*--checkpoint-dir $ck/branch-20" "$work/branch" \
  || fail "no clear refusal: $(grep tptrain "$work/branch")"
[ "$(ls "$ck" | tr '\n' ' ')" = "$first" ] || fail "the refused branch changed $ck: $(ls "$ck" | tr '\n' ' ')"
[ "$(wc -l < "$log")" -eq 50 ] || fail "the refused branch changed the log"
# the same branch in a directory of its own, with pruning and the shared log
run 1 --resume "$ck/step_00000020" --checkpoint-every 5 --steps 28 --checkpoint-dir "$ck/branch-20" \
  --keep-checkpoints 1 --log "$log" > /dev/null 2>&1 || fail "the branch in its own directory failed"
[ "$(ls "$ck" | tr '\n' ' ')" = "branch-20 $first" ] || fail "the branch changed the first run's checkpoints"
[ "$(ls "$ck/branch-20")" = "step_00000028" ] || fail "branch holds $(ls "$ck/branch-20")"
grep -q '"step" : 20' "$ck/branch-20/step_00000028/manifest.json" || fail "the branch's manifest names no parent"
steps=$(sed 's/^{"step":\([0-9]*\),.*/\1/' "$log" | tr '\n' ' ')
[ "$steps" = "$(seq -s ' ' 1 28) " ] || fail "the log does not read as one run of 28 steps: $steps"
# resumed from the latest in the same directory: prunes its own, keeps the first run's
run 1 --resume "$ck" --steps 70 --checkpoint-every 5 --keep-checkpoints 2 --checkpoint-dir "$ck" > /dev/null 2>&1 \
  || fail "the continuation failed"
[ "$(ls "$ck" | tr '\n' ' ')" = "branch-20 ${first}step_00000065 step_00000070 " ] \
  || fail "pruning took other runs' checkpoints: $(ls "$ck" | tr '\n' ' ')"
# two data-parallel ranks (the issue's --dp 2 case): refused the same way
run 2 --dp 2 --resume "$ck/step_00000030" --checkpoint-every 10 --steps 50 > "$work/dp2" 2>&1 \
  && fail "a dp-2 branch over later checkpoints was accepted"
grep -q "already holds step_00000040, step_00000050" "$work/dp2" || fail "dp 2: $(grep tptrain "$work/dp2")"
[ "$(ls "$ck" | tr '\n' ' ')" = "branch-20 ${first}step_00000065 step_00000070 " ] || fail "dp 2 changed $ck"
report "resume from step_20 into the directory holding the first run's step_30…50 (t=1, d=1 and d=2)" \
  "its later checkpoints of another run, refused in ${ms} ms with the fix" \
  "branch written to a directory of its own naming its parent; pruning takes only the run's own checkpoints; --log continues at the resumed step" \
  "none (every checkpoint of the first run kept, the log reads steps 1-28 once)"

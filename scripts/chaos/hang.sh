#!/usr/bin/env bash
# SIGSTOP of one rank of a running TP=2 job: it neither dies nor moves, and its peer waits for it in
# a collective. `tptop supervise --hang-timeout S` names the rank within S + 2 s, ends the job and
# restarts it from the latest checkpoint, and the restarted run ends with the same final loss as an
# uninterrupted one; the first incarnation's rings lose no step record.
source "$(dirname "$0")/lib.sh"
# 1000 steps: at a few ms a step, 300 could end before the loop below found a step to stop in
timeout=3 steps=1000 every=20
train=("${train_args[@]}" --steps $steps)

last_step() { grep -o '"step":[0-9]*' "$1" 2>/dev/null | tail -1 | cut -d: -f2; }
loss_at() { grep "\"step\":$2," "$1" | grep -o '"loss":[^,]*' | cut -d: -f2; }

# the uninterrupted run, for the final loss
mpirun -np 2 "$tptrain" "${train[@]}" --no-telemetry --log "$work/ref.jsonl" > /dev/null 2> "$work/ref.err" ||
  fail "the uninterrupted reference run failed: $(tail -1 "$work/ref.err")"

"$tptop" supervise --restart 1 --hang-timeout $timeout --np 2 -- "${train[@]}" --job "$job" \
  --checkpoint-dir "$work/ck" --checkpoint-every $every --log "$work/run.jsonl" > "$work/out" 2>&1 &
sup=$!

# past the second checkpoint, so the rank stops in an ordinary step: this script measures the
# step timeout's detection (a rank stopped in a write is HangTests' and HangWatchTests' case)
past_second_checkpoint() { [ "$(last_step "$work/run.jsonl")" -ge $((2 * every + 5)) ] 2>/dev/null; }
wait_until 120 past_second_checkpoint || fail "the job did not reach step $((2 * every + 5))"
victim=$(rank_pid "$job" 1)
[ -n "$victim" ] || fail "rank 1 of $job not found"
mid_interval() { local s; s=$(last_step "$work/run.jsonl"); [ -n "$s" ] && [ $((s % every)) -ge 3 ] && [ $((s % every)) -le $((every - 6)) ]; }
for try in 1 2 3 4 5; do
  wait_until 60 mid_interval || fail "the job did not reach the middle of a checkpoint interval"
  t0=$(now_ms)
  kill -STOP "$victim"
  sleep 0.3
  at=$(last_step "$work/run.jsonl")
  # rank 0 logged a checkpoint step: rank 1 may have stopped in that checkpoint; let it go, again
  [ $((at % every)) -ne 0 ] && break
  kill -CONT "$victim"
  [ $try -lt 5 ] || fail "rank 1 stopped in a checkpoint write five times"
  sleep 0.1
done

wait_until $((timeout + 10)) grep -q "hung: rank 1 made no progress" "$work/out" ||
  fail "no hang reported for rank 1 (supervisor: $(tail -3 "$work/out" | tr "\n" " "); log at step $(last_step "$work/run.jsonl"))"
detect_ms=$(( $(now_ms) - t0 ))
[ $detect_ms -le $(( (timeout + 2) * 1000 )) ] || fail "detected after $detect_ms ms > hang-timeout + 2 s"

wait "$sup"; status=$?
[ $status -eq 0 ] || fail "the supervised job ended with status $status: $(tail -2 "$work/out" | tr '\n' ' ')"
# gone, or a zombie nobody reaped yet
state=$(sed 's/.*) //' "/proc/$victim/stat" 2>/dev/null | cut -d' ' -f1)
[ -z "$state" ] || [ "$state" = Z ] || fail "the stopped rank $victim is still there (state $state)"
from=$(grep -o 'restarting as incarnation 1 from the latest checkpoint in .* (step_[0-9]*, checksums verified)' "$work/out" | grep -o 'step_[0-9]*')
[ -n "$from" ] || fail "no restart from a checkpoint"
resumed=$((10#${from#step_}))
final=$(loss_at "$work/run.jsonl" $steps) ref=$(loss_at "$work/ref.jsonl" $steps)
[ -n "$final" ] && [ "$final" = "$ref" ] || fail "final loss '$final' differs from the uninterrupted run's '$ref'"

# the first incarnation's rings still hold every step record each rank wrote (1…its last step)
ring_lost=$(TPTOP_RUNS="$work/no-store" "$tptop" export "$job" --format jsonl 2>/dev/null | grep '"type":"step"' |
  sed 's/.*"rank":\([0-9]*\),"index":[0-9]*,"step":\([0-9]*\),.*/\1 \2/' |
  awk '{ n[$1]++; if ($2 > m[$1]) m[$1] = $2 } END { for (r in n) lost += m[r] - n[r]; print lost + 0 }')
[ "$ring_lost" = 0 ] || fail "$ring_lost step records missing from the first incarnation's rings"

report "SIGSTOP of rank 1 at step $at" "rank 1 named by the supervisor in ${detect_ms} ms (--hang-timeout $timeout s)" \
  "restarted from $from, final loss $final = uninterrupted run's" \
  "$((at - resumed)) steps since the last checkpoint; $ring_lost records lost from the rings"

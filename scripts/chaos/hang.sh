#!/usr/bin/env bash
# Fault: one rank of a running TP=2 job is stopped (SIGSTOP): it neither dies nor moves, and its
# peer waits for it in a collective. Expected: `tptop supervise --hang-timeout S` names the rank
# within S + 2 s, ends the job and restarts it from the latest checkpoint, and the restarted run
# ends with the same final loss as an uninterrupted one.
# Usage: scripts/chaos/hang.sh [BIN_DIR]   (default .build/release; needs tptop, tptrain, mpirun)
# Prints one line:
#   chaos hang: injected SIGSTOP rank 1 at step N; detected in X.Y s (supervisor hang-timeout S s,
#   rank 1 named); outcome restarted from step_M; data lost K steps since the last checkpoint;
#   records lost from rings 0
# and exits non-zero when an expectation fails (the reasons go to stderr).
set -uo pipefail
BIN=${1:-.build/release}
TIMEOUT=3
STEPS=300
EVERY=20
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
job=chaos-hang-$$
tmp=$(mktemp -d)
sup=
cleanup() {
  if [[ -n $sup ]] && kill -0 "$sup" 2>/dev/null; then kill -TERM "$sup"; wait "$sup" 2>/dev/null; fi
  for p in $(pgrep -f "tptrain.*--job $job" || true); do kill -KILL "$p" 2>/dev/null; done
  "$BIN/tptop" gc "$job" "$job.r1" >/dev/null 2>&1
  rm -f "/dev/shm/tptop.$job" "/dev/shm/tptop.$job.r1"  # kept by gc while killed ranks are unreaped zombies
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=()
train=(--model tiny --batch 4 --seq 32 --quiet --tp 2 --steps "$STEPS")

# the uninterrupted run, for the final loss
mpirun --oversubscribe --bind-to none -np 2 "$BIN/tptrain" "${train[@]}" --no-telemetry --log "$tmp/ref.jsonl" \
  >/dev/null 2>"$tmp/ref.err" || { echo "chaos hang: reference run failed: $(tail -1 "$tmp/ref.err")"; exit 1; }

"$BIN/tptop" supervise --restart 1 --hang-timeout "$TIMEOUT" --np 2 --mpirun-arg=--oversubscribe -- \
  "${train[@]}" --job "$job" --checkpoint-dir "$tmp/ck" --checkpoint-every "$EVERY" --log "$tmp/run.jsonl" \
  >"$tmp/sup.out" 2>"$tmp/sup.err" &
sup=$!

last_step() { grep -o '"step":[0-9]*' "$1" 2>/dev/null | tail -1 | cut -d: -f2; }
loss_at() { grep "\"step\":$2," "$1" | grep -o '"loss":[^,]*' | cut -d: -f2; }

# past the second checkpoint, so the rank stops in an ordinary step
for _ in $(seq 1200); do [[ $(last_step "$tmp/run.jsonl") -ge $((2 * EVERY + 5)) ]] && break; sleep 0.1; done
victim=
for p in $(pgrep -f "tptrain.*--job $job"); do
  if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then victim=$p; fi
done
[[ -n $victim ]] || { echo "chaos hang: rank 1 of the job not found" >&2; exit 1; }
t0=$(date +%s.%N)
kill -STOP "$victim"
sleep 0.3
at=$(last_step "$tmp/run.jsonl")

detected=
for _ in $(seq $(((TIMEOUT + 10) * 20))); do
  if grep -q "hung: rank 1 made no progress" "$tmp/sup.out"; then detected=$(date +%s.%N); break; fi
  sleep 0.05
done
if [[ -n $detected ]]; then
  secs=$(awk -v a="$t0" -v b="$detected" 'BEGIN { printf "%.1f", b - a }')
  awk -v s="$secs" -v t="$TIMEOUT" 'BEGIN { exit !(s <= t + 2) }' || fail+=("detected after $secs s > hang-timeout + 2 s")
  named="rank 1 named"
else
  secs="-"; named="no rank named"; fail+=("no hang reported for rank 1")
fi

wait "$sup"; rc=$?; sup=
[[ $rc -eq 0 ]] || fail+=("supervisor exit $rc: $(tail -2 "$tmp/sup.out" | tr '\n' ' ')")
# gone, or a zombie nobody reaped yet
state=$(sed 's/.*) //' "/proc/$victim/stat" 2>/dev/null | cut -d' ' -f1)
[[ -z $state || $state == Z ]] || fail+=("the stopped rank $victim is still there (state $state)")
from=$(grep -o 'restarting as incarnation 1 from the latest checkpoint in .* (step_[0-9]*)' "$tmp/sup.out" | grep -o 'step_[0-9]*')
[[ -n $from ]] || fail+=("no restart from a checkpoint")
restart_step=$((10#${from#step_}))
[[ -n $from && -n $at ]] && lost=$((at - restart_step)) || lost="?"
final=$(loss_at "$tmp/run.jsonl" "$STEPS") ref=$(loss_at "$tmp/ref.jsonl" "$STEPS")
[[ -n $final && $final == "$ref" ]] || fail+=("final loss '$final' differs from the uninterrupted run's '$ref'")

# the first incarnation's rings still hold every step record each rank wrote (1…its last step)
ring_lost=$("$BIN/tptop" export "$job" --format jsonl 2>/dev/null | grep '"type":"step"' |
  sed 's/.*"rank":\([0-9]*\),"index":[0-9]*,"step":\([0-9]*\),.*/\1 \2/' |
  awk '{ n[$1]++; if ($2 > m[$1]) m[$1] = $2 } END { for (r in n) lost += m[r] - n[r]; print lost + 0 }')
[[ $ring_lost == 0 ]] || fail+=("$ring_lost step records missing from the first incarnation's rings")

echo "chaos hang: injected SIGSTOP rank 1 at step $at; detected in $secs s (supervisor hang-timeout $TIMEOUT s, $named);" \
  "outcome restarted from ${from:-nothing}; data lost $lost steps since the last checkpoint; records lost from rings $ring_lost"
for f in "${fail[@]}"; do echo "chaos hang: FAILED: $f" >&2; done
((${#fail[@]} == 0))

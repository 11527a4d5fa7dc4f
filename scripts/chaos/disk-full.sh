#!/usr/bin/env bash
# The checkpoint disk fills up: checkpoints go to a 3 MiB tmpfs that holds two tiny checkpoints
# but not three. The run fails with one line naming the disk, the complete checkpoint stays and a
# resume from it works.
source "$(dirname "$0")/lib.sh"
mkdir -p "$work/ck"
if ! mount -t tmpfs -o size=3m tptop-chaos "$work/ck" 2> "$work/mount"; then
  if [ "${CI:-}" = true ]; then fail "cannot mount a tmpfs for the disk-full case: $(cat "$work/mount")"; fi
  echo "chaos $name: SKIPPED: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): $(cat "$work/mount")"
  exit 0
fi
unmount() { umount "$work/ck" 2>/dev/null; cleanup; }
trap unmount EXIT
t0=$(now_ms)
mpirun -np 2 "$tptrain" "${train_args[@]}" --steps 40 --keep-checkpoints 0 --job "$job" \
  --checkpoint-dir "$work/ck" --checkpoint-every 10 > "$work/out" 2>&1
status=$?
ms=$(( $(now_ms) - t0 ))
[ $status -ne 0 ] || fail "the run did not notice the full disk"
line=$(grep -i "disk full\|no space" "$work/out" | head -1) || fail "no line names the full disk: $(grep -i error "$work/out" | head -2)"
at=$(echo "$line" | sed -n 's/.*tmp-step_0*\([0-9][0-9]*\).*/\1/p')
complete=$(for d in "$work"/ck/step_*; do [ -f "$d/manifest.json" ] && basename "$d"; done | tail -1)
[ -n "$complete" ] || fail "no complete checkpoint left"
n=${complete#step_}; n=$((10#$n))
for d in "$work"/ck/step_*; do [ -f "$d/manifest.json" ] || rm -rf "$d"; done
mpirun -np 2 "$tptrain" "${train_args[@]}" --steps $((n + 2)) --resume "$work/ck" --no-telemetry --keep-checkpoints 1 \
  > "$work/resume" 2>&1 || fail "resume from $complete failed: $(tail -2 "$work/resume")"
report "a 3 MiB tmpfs as --checkpoint-dir" "the checkpoint of step ${at:-?} failed (disk full), exit $status after ${ms} ms" \
  "stopped with one line; $complete complete and resumable" "$(( ${at:-$n} - n )) steps since the last checkpoint; $(ring_loss "$job") records lost from the rings"

#!/usr/bin/env bash
# A running job's job description (the shard table after the 4 KiB header) is overwritten: new
# readers refuse the segment with one line, but stop still reaches the job through the control
# page, and gc removes the segment once its processes are gone.
source "$(dirname "$0")/lib.sh"
mpirun -np 2 "$tptrain" "${train_args[@]}" --steps 100000 --job "$job" > "$work/out" 2>&1 &
mpi=$!
wait_until 30 step_at_least "$job" 3 || fail "the job did not start"
head -c 512 /dev/urandom | dd of="/dev/shm/tptop.$job" bs=1 seek=4096 conv=notrunc status=none
t0=$(now_ms)
problem=$("$tptop" ls | awk -v j="$job" '$1 == j')
echo "$problem" | grep -q "corrupt" || fail "ls does not name the damage: $problem"
ms=$(( $(now_ms) - t0 ))
"$tptop" stop "$job" > "$work/stop" 2>&1 || fail "stop did not reach the job: $(cat "$work/stop")"
wait "$mpi"; status=$?
[ $status -eq 0 ] || fail "the stopped job exited $status"
"$tptop" gc "$job" | grep -q "removed /dev/shm/tptop.$job" || fail "gc kept the corrupt segment"
report "512 random bytes over the job description of a running job" "ls: corrupt segment, in ${ms} ms" \
  "stopped cleanly through the control page, then removed by tptop gc" "0 steps (a clean stop)"

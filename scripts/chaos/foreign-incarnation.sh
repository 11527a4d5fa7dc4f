#!/usr/bin/env bash
# Another user (uid 65534) puts a file where the supervisor's first restart would publish
# (/dev/shm/tptop.<job>.r1): the restart runs under a name nobody can guess instead of failing at
# set-up, and `tptop stop <job>` reaches the live incarnation. Issue 25, item 10.
source "$(dirname "$0")/lib.sh"
setpriv=$(command -v setpriv) || { [ "${CI:-}" = true ] && fail "setpriv (util-linux) required under CI=true"; echo "chaos $name: SKIPPED: no setpriv"; exit 0; }
blocker=/dev/shm/tptop.$job.r1
"$setpriv" --reuid=65534 --regid=65534 --clear-groups sh -c "echo x > $blocker" || fail "uid 65534 could not write $blocker"
"$tptop" supervise --restart 1 --np 2 -- "${train_args[@]}" --steps 100000 --job "$job" > "$work/sup" 2>&1 &
sup=$!
wait_until 60 step_at_least "$job" 3 || fail "incarnation 0 did not start: $(tail -3 "$work/sup")"
kill -9 "$(rank_pid "$job" 1)"
wait_until 60 grep -q "running as $job.r1\." "$work/sup" || fail "the taken name was not skipped: $(grep supervise "$work/sup")"
live=$(sed -n "s/.*running as \($job\.r1\.[0-9a-f]*\).*/\1/p" "$work/sup" | head -1)
jobs_to_collect+=("$live")
wait_until 60 step_at_least "$live" 2 || fail "incarnation 1 ($live) did not train: $(grep -E 'supervise|error' "$work/sup" | tail -3)"
"$tptop" stop "$job" > "$work/stop" 2>&1 || fail "tptop stop $job did not reach $live: $(cat "$work/stop")"
grep -q "restarted it as $live: asking $live" "$work/stop" || fail "stop did not say it follows the restart: $(cat "$work/stop")"
wait "$sup"; status=$?
[ "$status" -eq 0 ] || fail "the supervisor ended with $status: $(grep supervise "$work/sup" | tail -2)"
[ "$(cat "$blocker")" = x ] || fail "the other user's file was changed"
report "uid 65534 wrote $blocker before the first restart" "the name is taken: the supervisor skips it" \
  "incarnation 1 ran as $live; tptop stop $job reached it and stopped it (exit 0)" "the steps of incarnation 0 (no checkpoints asked for)"

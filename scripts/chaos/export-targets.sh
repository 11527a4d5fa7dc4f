#!/usr/bin/env bash
# tptop export to a symlink (written through: the link stays, its target gets the records), to a
# device (/dev/null stays a device; /dev/full fails with one line), and to standard output.
source "$(dirname "$0")/lib.sh"
mpirun -np 2 "$tptrain" "${train_args[@]}" --steps 20 --job "$job" > "$work/out" 2>&1 || fail "training failed"
echo old > "$work/target"
ln -s "$work/target" "$work/link"
t0=$(now_ms)
"$tptop" export "$job" --format jsonl --output "$work/link" 2> "$work/err" || fail "export to a symlink failed: $(cat "$work/err")"
[ -L "$work/link" ] || fail "the symlink was replaced"
lines=$(wc -l < "$work/target")
[ "$lines" -ge 40 ] || fail "the link's target holds $lines lines"
lost=$(sed -n 's/.*(\([0-9]*\) already overwritten).*/\1/p' "$work/err")
"$tptop" export "$job" --format csv --output /dev/null 2> /dev/null || fail "export to /dev/null failed"
[ -c /dev/null ] || fail "/dev/null is no longer a device"
if "$tptop" export "$job" --format jsonl --output /dev/full 2> "$work/full"; then fail "export to /dev/full succeeded"; fi
[ -c /dev/full ] || fail "/dev/full is no longer a device"
[ "$(wc -l < "$work/full")" -eq 1 ] || fail "not one line for /dev/full: $(cat "$work/full")"
[ "$("$tptop" export "$job" --format jsonl --output - | wc -l)" -eq "$lines" ] || fail "standard output differs"
ms=$(( $(now_ms) - t0 ))
report "export to a symlink, /dev/null, /dev/full and -" "/dev/full: $(cut -c1-60 "$work/full")…" \
  "link kept and written through ($lines records), devices kept, ${ms} ms in all" "$lost records lost from the rings"

#!/usr/bin/env bash
# tptop export to a symlink (written through: the link stays, its target gets the records), to a
# device (/dev/null stays a device; /dev/full fails with one line), and to standard output: from
# the ended job's stored run, and from its segment's rings.
source "$(dirname "$0")/lib.sh"
mpirun -np 2 "$tptrain" "${train_args[@]}" --steps 20 --job "$job" > "$work/out" 2>&1 || fail "training failed"
t0=$(now_ms)
# the ended job's export reads its stored run; with no store to read, its segment's rings
for source in store rings; do
  if [ $source = rings ]; then export TPTOP_RUNS="$work/no-store"; fi
  echo old > "$work/target"
  ln -sfn "$work/target" "$work/link"
  "$tptop" export "$job" --format jsonl --output "$work/link" 2> "$work/err" || fail "$source: export to a symlink failed: $(cat "$work/err")"
  [ -L "$work/link" ] || fail "$source: the symlink was replaced"
  lines=$(wc -l < "$work/target")
  [ "$lines" -ge 40 ] || fail "$source: the link's target holds $lines lines"
  "$tptop" export "$job" --format csv --output /dev/null 2> /dev/null || fail "$source: export to /dev/null failed"
  [ -c /dev/null ] || fail "$source: /dev/null is no longer a device"
  if "$tptop" export "$job" --format jsonl --output /dev/full 2> "$work/full"; then fail "$source: export to /dev/full succeeded"; fi
  [ -c /dev/full ] || fail "$source: /dev/full is no longer a device"
  [ "$(wc -l < "$work/full")" -eq 1 ] || fail "$source: not one line for /dev/full: $(cat "$work/full")"
  [ "$("$tptop" export "$job" --format jsonl --output - | wc -l)" -eq "$lines" ] || fail "$source: standard output differs"
done
lost=$(ring_loss "$job")
ms=$(( $(now_ms) - t0 ))
report "export to a symlink, /dev/null, /dev/full and -" "/dev/full: $(cut -c1-60 "$work/full")…" \
  "from the stored run and the rings: link kept and written through ($lines records), devices kept, ${ms} ms in all" "$lost records lost from the rings"

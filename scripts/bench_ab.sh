#!/usr/bin/env bash
# Interleaved A/B of two builds on the same training run: prints `BENCH ab_<A|B>_tp<N>_step_ms`
# medians over every counted step of every round, and B's median over A's.
# Usage: scripts/bench_ab.sh A_BIN_DIR B_BIN_DIR
#   ROUNDS=N  rounds (default 6); each round runs A then B, or B then A, alternating, so neither
#             build always gets the quieter stretch of a noisy host
#   STEPS=N   steps per run (default 12; the first two are warm-up and not counted)
#   TPS="1 2" the TP sizes compared (default 2)
#   DP=N      data-parallel size (default 1): each run has TP × DP ranks
#   BATCH=N   --batch (default 8)
#   ARGS=…    extra tptrain arguments (e.g. "--sequence-parallel")
# Besides the step time it prints the medians of comm_exposed_ms and comm_total_ms.
set -euo pipefail
A=$1 B=$2
ROUNDS=${ROUNDS:-6}
STEPS=${STEPS:-12}
TPS=${TPS:-2}
DP=${DP:-1}
BATCH=${BATCH:-8}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

train() {  # train BIN TP LOGFILE
  # shellcheck disable=SC2086
  mpirun --oversubscribe -np "$(( $2 * DP ))" "$1/tptrain" --model small --batch "$BATCH" --seq 256 --steps "$STEPS" \
    --tp "$2" --dp "$DP" --no-telemetry --quiet --log "$3" ${ARGS:-} >/dev/null
}

for r in $(seq "$ROUNDS"); do
  for tp in $TPS; do
    if (( r % 2 )); then order="A B"; else order="B A"; fi
    for which in $order; do
      if [[ $which == A ]]; then bin=$A; else bin=$B; fi
      train "$bin" "$tp" "$tmp/${which}_tp${tp}_$r.jsonl"
    done
  done
done
python3 - "$tmp" "$ROUNDS" "$TPS" <<'PY'
import glob, json, statistics, sys
tmp, rounds, tps = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
for tp in tps:
    med = {}
    for w in "AB":
        rows = [json.loads(l) for p in sorted(glob.glob(f"{tmp}/{w}_tp{tp}_*.jsonl")) for l in list(open(p))[2:]]
        xs = [r["step_ms"] for r in rows]
        med[w] = statistics.median(xs)
        print(f"BENCH ab_{w}_tp{tp}_step_ms {med[w]:.1f} ms")
        print(f"BENCH ab_{w}_tp{tp}_step_ms_min {min(xs):.1f} ms")
        for f in ("comm_exposed_ms", "comm_total_ms"):
            print(f"BENCH ab_{w}_tp{tp}_{f} {statistics.median(r.get(f, 0) for r in rows):.1f} ms")
    print(f"BENCH ab_B_over_A_tp{tp} {med['B'] / med['A']:.3f} ratio")
PY

#!/usr/bin/env bash
# Prints benchmark lines `BENCH <name> <value> <unit>`: engine throughput and MFU for the small
# preset (B8, T256) at TP=1 and TP=2, then the telemetry and dashboard figures.
# Usage: scripts/bench.sh [BIN_DIR] (default .build/release). STEPS=N overrides the step count.
set -euo pipefail
BIN=${1:-.build/release}
STEPS=${STEPS:-10}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CORES=$(nproc)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

"$BIN/tptrain" --measure-peak | tee "$tmp/peak"
PEAK=$(awk '/sgemm_peak_1core/ {print $3}' "$tmp/peak")
echo "BENCH cores $CORES cores"

for TP in 1 2; do
  mpirun --oversubscribe -np $TP "$BIN/tptrain" --model small --batch 8 --seq 256 --steps "$STEPS" --tp $TP \
    --no-telemetry --quiet --log "$tmp/tp$TP.jsonl" >/dev/null
  python3 - "$tmp/tp$TP.jsonl" "$TP" "$PEAK" "$CORES" <<'PY'
import json, statistics, sys
path, tp, peak, cores = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rows = [json.loads(l) for l in open(path)][2:]  # first two steps warm up
med = lambda k: statistics.median(r[k] for r in rows)
# model FLOPs per token of the small preset: 6N + 12·L·C·T (N = 12·L·C² + V·C)
L, C, V, T = 6, 384, 256, 256
flops_tok = 6 * (12 * L * C * C + V * C) + 12 * L * C * T
tok_s = med("tokens_per_s")
gflops = flops_tok * tok_s / 1e9
name = f"small_tp{tp}"
print(f"BENCH {name}_tokens_per_s {tok_s:.1f} tok/s")
print(f"BENCH {name}_step_ms {med('step_ms'):.1f} ms")
for k in ("forward", "backward", "optimizer", "comm"):
    print(f"BENCH {name}_{k}_ms {med(k + '_ms'):.1f} ms")
print(f"BENCH {name}_gflops {gflops:.1f} GFLOP/s")
print(f"BENCH {name}_mfu {gflops / (peak * cores):.3f} ratio")
PY
done

"$BIN/tptop" bench-telemetry 2>/dev/null || echo "BENCH telemetry unavailable"
"$BIN/tptop" bench-dashboard 2>/dev/null || echo "BENCH dashboard unavailable"

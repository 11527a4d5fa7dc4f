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

STEP_MS=$(python3 -c "import json,statistics,sys; r=[json.loads(l) for l in open(sys.argv[1])][2:]; print(statistics.median(x['step_ms'] for x in r))" "$tmp/tp2.jsonl")
"$BIN/tptop" bench-telemetry --step-ms "$STEP_MS" || echo "BENCH telemetry unavailable"
# the same small TP=2 training with telemetry on, for a direct (noisier) comparison
mpirun --oversubscribe -np 2 "$BIN/tptrain" --model small --batch 8 --seq 256 --steps "$STEPS" --tp 2 \
  --quiet --log "$tmp/tel.jsonl" --job "bench-$$" >/dev/null
"$BIN/tptop" gc "bench-$$" >/dev/null 2>&1 || true
python3 - "$tmp/tp2.jsonl" "$tmp/tel.jsonl" <<'PY'
import json, statistics, sys
med = lambda p: statistics.median(json.loads(l)["step_ms"] for l in list(open(p))[2:])
off, on = med(sys.argv[1]), med(sys.argv[2])
print(f"BENCH small_tp2_step_ms_telemetry_off {off:.1f} ms")
print(f"BENCH small_tp2_step_ms_telemetry_on {on:.1f} ms")
PY
"$BIN/tptop" bench-dashboard || echo "BENCH dashboard unavailable"
if python3 -c "import torch" 2>/dev/null; then
  python3 "$(dirname "$0")/bench_pytorch.py" --threads "$CORES" --steps "$STEPS" --data "$(dirname "$0")/../data/shakespeare.txt"
else
  echo "# PyTorch not installed: scripts/bench_pytorch.py gives the baseline where it is"
fi

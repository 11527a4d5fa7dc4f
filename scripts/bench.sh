#!/usr/bin/env bash
# Prints benchmark lines `BENCH <name> <value> <unit>`: engine throughput and MFU for the small
# preset (B8, T256) at TP=1 and TP=2, the telemetry, dashboard and `tptop serve` scrape figures, the collectives, the
# activation MiB and step time of each activation-memory flag at TP=2, the distributed optimizer's
# memory and step time at d=2, and — where PyTorch is
# installed — an interleaved TP=2 / PyTorch / TP=1 comparison.
# Usage: scripts/bench.sh [BIN_DIR] (default .build/release)
#   STEPS=N   steps per training run (default 20; the first two are warm-up and not counted)
#   ROUNDS=N  rounds of the interleaved comparison (default 3)
#   NODE_ROUNDS=N  rounds of the two-simulated-node forwarding comparison (default 4)
#   PYTHON=…  the interpreter that has torch (default python3)
#
# Step times on a shared VM vary from one second to the next, so each figure is the median over
# all counted steps, and the minimum step is printed beside it (`_min`, `_best`): the median is
# what a user sees, the minimum what the code does when nothing else runs.
set -euo pipefail
BIN=${1:-.build/release}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-3}
PY=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CORES=$(nproc)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the benchmark's runs are recorded in a store of their own, never the user's
export TPTOP_RUNS="$tmp/runs"

# The peak is measured before and after the training runs and the higher one is used: a peak
# taken while the host is busy reads low and would inflate every MFU of the run.
"$BIN/tptrain" --measure-peak > "$tmp/peak_before"
echo "BENCH cores $CORES cores"

train() {  # train TP LOGFILE
  mpirun --oversubscribe -np "$1" "$BIN/tptrain" --model small --batch 8 --seq 256 --steps "$STEPS" --tp "$1" \
    --no-telemetry --quiet --log "$2" >/dev/null
}

summary() {  # summary NAME PEAK CORES LOGFILE...
  python3 - "$@" <<'PY'
import json, statistics, sys
name, peak, cores, paths = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
rows = [r for p in paths for r in [json.loads(l) for l in open(p)][2:]]  # first two steps warm up
med = lambda k: statistics.median(r[k] for r in rows)
# model FLOPs per token of the small preset: 6N + 12·L·C·T (N = 12·L·C² + V·C)
L, C, V, T, BT = 6, 384, 256, 256, 8 * 256
flops_tok = 6 * (12 * L * C * C + V * C) + 12 * L * C * T
step, best = med("step_ms"), min(r["step_ms"] for r in rows)
gflops, gbest = flops_tok * BT / step / 1e6, flops_tok * BT / best / 1e6
print(f"BENCH {name}_tokens_per_s {BT / step * 1e3:.1f} tok/s")
print(f"BENCH {name}_step_ms {step:.1f} ms")
print(f"BENCH {name}_step_ms_min {best:.1f} ms")
for k in ("forward", "backward", "optimizer", "comm"):
    print(f"BENCH {name}_{k}_ms {med(k + '_ms'):.1f} ms")
print(f"BENCH {name}_gflops {gflops:.1f} GFLOP/s")
print(f"BENCH {name}_mfu {gflops / (peak * cores):.3f} ratio")
print(f"BENCH {name}_mfu_best {gbest / (peak * cores):.3f} ratio")
PY
}

for TP in 1 2; do train $TP "$tmp/tp$TP.jsonl"; done
"$BIN/tptrain" --measure-peak > "$tmp/peak_after"
PEAK=$(cat "$tmp/peak_before" "$tmp/peak_after" | awk '/sgemm_peak_1core/ && $3 > p {p = $3} END {print p}')
for when in before after; do
  awk -v w="$when" '/sgemm_(peak|median)_1core/ {sub(/_1core/, "_1core_" w, $2); print}' "$tmp/peak_$when"
done
echo "BENCH sgemm_peak_1core $PEAK GFLOP/s"
grep blas_core "$tmp/peak_before"
for TP in 1 2; do summary "small_tp$TP" "$PEAK" "$CORES" "$tmp/tp$TP.jsonl"; done

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
# `tptop serve`: one /metrics scrape (a collection and an encoding) of synthetic jobs.
"$BIN/tptop" bench-scrape --ranks 16,256,1024 || echo "BENCH scrape unavailable"
# The run store: recording against --no-record (telemetry on in both), interleaved; bytes per step per rank
python3 "$HERE/bench_record.py" "$BIN" 2 "--model small --batch 8 --seq 256 --steps $STEPS --tp 2"
# The store's write rate and bytes, and the first screens of `open` (100 000 steps × 8 ranks)
# and `compare` (five such runs): medians of 3 rounds
"$BIN/tptop" bench-store --rounds 3 || echo "BENCH store unavailable"

# The collectives alone (both algorithms, three sizes), then a training step with each.
for NP in 2 4; do mpirun --oversubscribe -np $NP "$BIN/tpcollectives" bench; done
python3 scripts/bench_flags.py "$BIN" small_tp2 2 "--model small --batch 8 --seq 256 --steps $STEPS --tp 2" \
  ring="--collectives ring" mpi="--collectives mpi"
# The distributed optimizer at t=1×d=2 (small preset, B4 per replica): optimizer MiB per rank and
# step time against the plain run (interleaved, rotating order, medians)
FIELDS=optimizer_bytes python3 scripts/bench_flags.py "$BIN" small_dp2 2 "--model small --batch 4 --seq 256 --steps $STEPS --tp 1 --dp 2" \
  plain="" distopt="--distributed-optimizer"

# Activation memory per rank (the arena: activations and backward scratch) and the step time of
# each activation-memory flag against the plain run, at t=2.
FIELDS=activation_bytes python3 scripts/bench_flags.py "$BIN" act_tp2 2 \
  "--model small --batch 8 --seq 256 --steps $STEPS --tp 2" \
  plain="" sp="--sequence-parallel" selective="--recompute selective" full="--recompute full" \
  sp_selective="--sequence-parallel --recompute selective"

# Communication overlap: step time and exposed (blocked) vs in-flight communication with and
# without each flag, at t=2 (the parallel linears' GEMMs pipelined with their all-reduces in row
# chunks; with sequence parallelism their all-gathers and reduce-scatters) and at t=1 × d=2
# (gradient buckets reduced during the backward; with the distributed optimizer reduce-scattered),
# bucket sizes and chunk counts around the defaults.
FIELDS=comm_exposed_ms,comm_total_ms python3 scripts/bench_flags.py "$BIN" overlap_tp2 2 \
  "--model small --batch 8 --seq 256 --steps $STEPS --tp 2" \
  plain="" overlap_tp_2chunks="--overlap-tp --tp-chunks 2" overlap_tp="--overlap-tp" \
  sp="--sequence-parallel" sp_overlap_tp="--sequence-parallel --overlap-tp"
FIELDS=comm_exposed_ms,comm_total_ms python3 scripts/bench_flags.py "$BIN" overlap_dp2 2 \
  "--model small --batch 8 --seq 256 --steps $STEPS --tp 1 --dp 2" \
  plain="" overlap_grad="--overlap-grad-reduce" overlap_grad_1mib="--overlap-grad-reduce --bucket-mib 1" \
  overlap_grad_16mib="--overlap-grad-reduce --bucket-mib 16" \
  distopt="--distributed-optimizer" distopt_overlap_grad="--distributed-optimizer --overlap-grad-reduce"

# A job on two simulated nodes (t=2 × d=2, ranks 2-3 forward their records to rank 0 over MPI)
# against the same job with telemetry off, interleaved (the order alternates each round); the
# figure is the median whole cycle per step (`cycle_ms`: the step, the observer, the boundary's
# control collective) over every counted step of every round. The forwarding ranks also report
# the CPU time their forwarding calls took per step (`--forwarding-stats`).
NODE_ROUNDS=${NODE_ROUNDS:-4}
nodes_run() {  # nodes_run on|off LOGFILE
  local tel=(--no-telemetry)
  [[ $1 == on ]] && tel=(--job "bench-nodes-$$-$(basename "$2" .jsonl)" --forwarding-stats)
  mpirun --oversubscribe --bind-to none -np 4 "$BIN/tptrain" --model small --batch 4 --seq 128 --steps "$STEPS" \
    --tp 2 --dp 2 --simulate-nodes 2 --quiet --log "$2" "${tel[@]}" | grep '^BENCH forwarding' >> "$tmp/fwd_cpu.txt" || true
  if [[ $1 == on ]]; then
    "$BIN/tptop" gc >/dev/null 2>&1 || true
    "$BIN/tptop" --namespace node1 gc >/dev/null 2>&1 || true
  fi
}
for r in $(seq "$NODE_ROUNDS"); do
  if (( r % 2 )); then order="on off"; else order="off on"; fi
  for m in $order; do nodes_run "$m" "$tmp/nodes_${m}_$r.jsonl"; done
done
python3 - "$tmp" "$NODE_ROUNDS" <<'PY'
import glob, json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
cyc = {m: [json.loads(l)["cycle_ms"] for p in sorted(glob.glob(f"{tmp}/nodes_{m}_*.jsonl")) for l in list(open(p))[2:]]
       for m in ("on", "off")}
on, off = statistics.median(cyc["on"]), statistics.median(cyc["off"])
print(f"BENCH nodes2_t2d2_cycle_ms_telemetry_off {off:.1f} ms")
print(f"BENCH nodes2_t2d2_cycle_ms_forwarding_on {on:.1f} ms")
print(f"BENCH nodes2_t2d2_forwarding_overhead_pct {(on / off - 1) * 100:.2f} %")
cpu = [float(l.split()[2]) for l in open(f"{tmp}/fwd_cpu.txt")] if glob.glob(f"{tmp}/fwd_cpu.txt") else []
if cpu:
    worst = max(cpu)
    print(f"BENCH nodes2_forwarding_cpu_us_per_step_max {worst:.1f} us")
    print(f"BENCH nodes2_forwarding_cpu_pct_of_step {worst / 1e3 / off * 100:.4f} %")
PY

if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "# PyTorch not installed for $PY: set PYTHON to an interpreter with torch for the comparison"
  exit 0
fi
# Interleaved rounds of tptrain TP=2, PyTorch with one thread per core and tptrain TP=1, so all
# three see the same machine; medians over all counted steps of all rounds. The order rotates
# each round (with 3 rounds each run takes each place once): on a shared host the run that
# starts first tends to get the quietest stretch.
torch_run() {
  "$PY" "$HERE/bench_pytorch.py" --threads "$CORES" --steps "$STEPS" --data "$HERE/../data/shakespeare.txt" \
    --times "$tmp/cmp_torch.txt" 2>/dev/null | grep '^#' || true
}
for r in $(seq "$ROUNDS"); do
  for k in 0 1 2; do
    case $(( (r - 1 + k) % 3 )) in
      0) train 2 "$tmp/cmp_tp2_$r.jsonl" ;;
      1) torch_run ;;
      2) train 1 "$tmp/cmp_tp1_$r.jsonl" ;;
    esac
  done
done
python3 - "$tmp" "$ROUNDS" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
torch = [float(l) for l in open(f"{tmp}/cmp_torch.txt")]
ours = {tp: [json.loads(l)["step_ms"] for r in range(1, rounds + 1) for l in list(open(f"{tmp}/cmp_tp{tp}_{r}.jsonl"))[2:]]
        for tp in (1, 2)}
BT = 8 * 256
for name, xs in (("small_tp2_interleaved", ours[2]), ("small_tp1_interleaved", ours[1]),
                 ("pytorch_small_interleaved", torch)):
    print(f"BENCH {name}_step_ms {statistics.median(xs):.1f} ms")
    print(f"BENCH {name}_step_ms_min {min(xs):.1f} ms")
    print(f"BENCH {name}_tokens_per_s {BT / statistics.median(xs) * 1e3:.1f} tok/s")
for tp in (2, 1):
    print(f"BENCH small_tp{tp}_vs_pytorch {statistics.median(torch) / statistics.median(ours[tp]):.3f} ratio")
    print(f"BENCH small_tp{tp}_vs_pytorch_best {min(torch) / min(ours[tp]):.3f} ratio")
PY

#!/usr/bin/env bash
# The long sweeps of `make bench-all` (after `make bench`'s headline figures): `tptop serve`'s
# scrape, the run store's cost, the collectives alone and in a step, the distributed optimizer,
# every activation-memory flag, communication overlap and two simulated nodes. Each sweep
# interleaves its variants, the order rotating, medians over all counted steps.
# Usage: scripts/bench_sweeps.sh [BIN_DIR] (default .build/release)
#   STEPS=N   steps per training run (default 20; the first two are warm-up and not counted)
#   ROUNDS=N  rounds of each interleaved sweep (default 3)
#   NODE_ROUNDS=N  rounds of the two-simulated-node forwarding comparison (default 4)
set -euo pipefail
BIN=${1:-.build/release}
STEPS=${STEPS:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export TPTOP_RUNS="$tmp/runs"
# `tptop serve`: one /metrics scrape (a collection and an encoding) of synthetic jobs.
"$BIN/tptop-dev" bench-scrape --ranks 16,256,1024 || echo "BENCH scrape unavailable"
# The run store: recording against --no-record (telemetry on in both), interleaved; bytes per step per rank
python3 "$HERE/bench_record.py" "$BIN" 2 "--model small --batch 8 --seq 256 --steps $STEPS --tp 2"
# The store's write rate and bytes, and the first screens of `open` (100 000 steps × 8 ranks)
# and `compare` (five such runs): medians of 3 rounds
"$BIN/tptop-dev" bench-store --rounds 3 || echo "BENCH store unavailable"

# The collectives alone (both algorithms, three sizes), then a training step with each.
for NP in 2 4; do mpirun --oversubscribe -np $NP "$BIN/tpcollectives" bench; done
python3 "$HERE/bench_flags.py" "$BIN" small_tp2 2 "--model small --batch 8 --seq 256 --steps $STEPS --tp 2" \
  ring="--collectives ring" mpi="--collectives mpi"
# The distributed optimizer at t=1×d=2 (small preset, B4 per replica): optimizer MiB per rank and
# step time against the plain run (interleaved, rotating order, medians)
FIELDS=optimizer_bytes python3 "$HERE/bench_flags.py" "$BIN" small_dp2 2 "--model small --batch 4 --seq 256 --steps $STEPS --tp 1 --dp 2" \
  plain="" distopt="--distributed-optimizer"

# Activation memory per rank (the arena: activations and backward scratch) and the step time of
# each activation-memory flag against the plain run, at t=2.
FIELDS=activation_bytes python3 "$HERE/bench_flags.py" "$BIN" act_tp2 2 \
  "--model small --batch 8 --seq 256 --steps $STEPS --tp 2" \
  plain="" sp="--sequence-parallel" selective="--recompute selective" full="--recompute full" \
  sp_selective="--sequence-parallel --recompute selective"

# Communication overlap: step time and exposed (blocked) vs in-flight communication with and
# without each flag, at t=2 (the parallel linears' GEMMs pipelined with their all-reduces in row
# chunks; with sequence parallelism their all-gathers and reduce-scatters) and at t=1 × d=2
# (gradient buckets reduced during the backward; with the distributed optimizer reduce-scattered),
# bucket sizes and chunk counts around the defaults.
FIELDS=comm_exposed_ms,comm_total_ms python3 "$HERE/bench_flags.py" "$BIN" overlap_tp2 2 \
  "--model small --batch 8 --seq 256 --steps $STEPS --tp 2" \
  plain="" overlap_tp_2chunks="--overlap-tp --tp-chunks 2" overlap_tp="--overlap-tp" \
  sp="--sequence-parallel" sp_overlap_tp="--sequence-parallel --overlap-tp"
FIELDS=comm_exposed_ms,comm_total_ms python3 "$HERE/bench_flags.py" "$BIN" overlap_dp2 2 \
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


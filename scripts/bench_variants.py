#!/usr/bin/env python3
"""Interleaved step-time comparison of tptrain variants that differ in binary, rank count or
environment (the small preset, B8 T256 unless ARGS says otherwise).

    bench_variants.py LABEL=BIN_DIR:NP[:ENV=VALUE,...] [LABEL=...]

Runs every variant ROUNDS times (env, default 5), the order rotating each round, STEPS steps
each (default 12; the first two dropped), and prints per variant the median and fastest step
over all rounds, the median of each round, and its ratio to the first variant. The 1-minute
load average is printed before and after each round: on a shared host it says how busy the
comparison's host was."""
import json, os, shlex, statistics, subprocess, sys, tempfile

variants = []
for spec in sys.argv[1:]:
    label, rest = spec.split("=", 1)
    parts = rest.split(":")
    env = dict(kv.split("=", 1) for kv in parts[2].split(",") if kv) if len(parts) > 2 else {}
    variants.append((label, parts[0], int(parts[1]), env))
rounds = int(os.environ.get("ROUNDS", "5"))
steps = os.environ.get("STEPS", "12")
args = shlex.split(os.environ.get("ARGS", "--model small --batch 8 --seq 256"))
times = {v[0]: [] for v in variants}
per_round = {v[0]: [] for v in variants}
loads = []
with tempfile.TemporaryDirectory() as tmp:
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        before = os.getloadavg()[0]
        for label, bindir, np, env in order:
            log = os.path.join(tmp, f"{label}-{r}.jsonl")
            cmd = ["mpirun", "--oversubscribe", "-np", str(np), os.path.join(bindir, "tptrain")] + args + \
                  ["--steps", steps, "--tp", str(np), "--quiet", "--no-telemetry", "--log", log]
            e = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **env)
            p = subprocess.run(cmd, env=e, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"{label} failed: {' '.join(cmd)}\n{p.stderr.strip()}")
            xs = [json.loads(l)["step_ms"] for l in list(open(log))[2:]]
            times[label] += xs
            per_round[label].append(statistics.median(xs))
        loads.append((before, os.getloadavg()[0]))
        print(f"# round {r + 1}: load {before:.2f} -> {loads[-1][1]:.2f}: " +
              " ".join(f"{l} {per_round[l][-1]:.1f}" for l, *_ in variants), flush=True)
first = statistics.median(times[variants[0][0]])
for label, *_ in variants:
    m = statistics.median(times[label])
    print(f"BENCH variant_{label}_step_ms {m:.1f} ms")
    print(f"BENCH variant_{label}_step_ms_min {min(times[label]):.1f} ms")
    print(f"BENCH variant_{label}_vs_{variants[0][0]} {m / first:.3f} ratio")
print(f"# load average (1 min) before/after each round: " + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in loads))

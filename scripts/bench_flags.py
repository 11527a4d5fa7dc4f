#!/usr/bin/env python3
"""Interleaved step-time comparison of tptrain runs that differ only in flags.

    bench_flags.py BIN NAME NP "COMMON ARGS" LABEL="FLAGS" [LABEL="FLAGS" ...]

Runs every variant ROUNDS times (env, default 3), the order rotating each round so no variant
always runs first or last on this noisy machine, and prints for each variant the median step
time over all rounds (the first two steps of each run dropped) and its ratio to the first
variant's:

    BENCH <NAME>_<LABEL>_step_ms <median> ms
    BENCH <NAME>_<LABEL>_vs_<FIRST> <ratio> ratio

Extra per-step JSON fields named in FIELDS (env, comma-separated, e.g.
activation_bytes,comm_exposed_ms) are printed as medians too (bytes as MiB; a `_ms` field also as
its median share of the step, `<field>_share`)."""
import json, os, shlex, statistics, subprocess, sys, tempfile

binary, name, np, common = sys.argv[1], sys.argv[2], int(sys.argv[3]), shlex.split(sys.argv[4])
variants = [v.split("=", 1) for v in sys.argv[5:]]
rounds = int(os.environ.get("ROUNDS", "3"))
fields = [f for f in os.environ.get("FIELDS", "").split(",") if f]
steps = {label: [] for label, _ in variants}
extra = {label: {f: [] for f in fields} for label, _ in variants}
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
with tempfile.TemporaryDirectory() as tmp:
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for label, flags in order:
            log = os.path.join(tmp, f"{label}-{r}.jsonl")
            cmd = ["mpirun", "--oversubscribe", "-np", str(np), os.path.join(binary, "tptrain")] + common + \
                  shlex.split(flags) + ["--quiet", "--no-telemetry", "--log", log]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"bench_flags: {label} failed: {' '.join(cmd)}\n{p.stderr.strip()}")
            rows = [json.loads(l) for l in open(log)][2:]
            steps[label] += [x["step_ms"] for x in rows]
            for f in fields:
                extra[label][f] += [x[f] for x in rows if f in x]
                if f.endswith("_ms"):  # also as a share of each step
                    extra[label].setdefault(f[:-3] + "_share", []).extend(
                        x[f] / x["step_ms"] for x in rows if f in x and x["step_ms"] > 0)
first = variants[0][0]
base = statistics.median(steps[first])
for label, _ in variants:
    m = statistics.median(steps[label])
    print(f"BENCH {name}_{label}_step_ms {m:.1f} ms")
    if label != first:
        print(f"BENCH {name}_{label}_vs_{first} {m / base:.3f} ratio")
    for f, xs in extra[label].items():
        if not xs:
            continue
        v = statistics.median(xs)
        if f.endswith("_share"):
            print(f"BENCH {name}_{label}_{f} {v:.3f} ratio")
        elif f.endswith("_bytes"):
            print(f"BENCH {name}_{label}_{f[:-6]}_mib {v / 2**20:.2f} MiB")
        else:
            print(f"BENCH {name}_{label}_{f} {v:.3f} {f.rsplit('_', 1)[-1]}")

#!/usr/bin/env python3
"""The run store's cost: tptrain with telemetry on, recorded against --no-record, interleaved.

    bench_record.py BIN NP "COMMON ARGS"

ROUNDS (env, default 3) rounds, the order alternating each round; each figure is the median
step time over every counted step (the first two of each run dropped). Also the store's bytes
per step per rank (the run's database after a complete run, divided by steps × ranks):

    BENCH record_<np>_step_ms_no_record <ms> ms
    BENCH record_<np>_step_ms_record <ms> ms
    BENCH record_<np>_overhead_pct <pct> %
    BENCH store_bytes_per_step_per_rank <bytes> B
"""
import json, os, shlex, sqlite3, statistics, subprocess, sys, tempfile

binary, np, common = sys.argv[1], int(sys.argv[2]), shlex.split(sys.argv[3])
rounds = int(os.environ.get("ROUNDS", "3"))
steps = {"no_record": [], "record": []}
with tempfile.TemporaryDirectory() as tmp:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", TPTOP_RUNS=tmp + "/runs")
    sizes = []
    for r in range(rounds):
        order = ["record", "no_record"] if r % 2 == 0 else ["no_record", "record"]
        for label in order:
            job = f"bench-rec-{os.getpid()}-{r}-{label}"
            log = os.path.join(tmp, job + ".jsonl")
            flags = ["--no-record"] if label == "no_record" else []
            cmd = ["mpirun", "--oversubscribe", "-np", str(np), os.path.join(binary, "tptrain")] + common + flags + \
                  ["--quiet", "--job", job, "--log", log]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True)
            subprocess.run([os.path.join(binary, "tptop"), "gc", job], capture_output=True)
            if p.returncode != 0:
                sys.exit(f"bench_record: {label} failed: {' '.join(cmd)}\n{p.stderr.strip()}")
            rows = [json.loads(l) for l in open(log)][2:]
            steps[label] += [x["step_ms"] for x in rows]
            db = os.path.join(tmp, "runs", job + ".sqlite")
            if label == "record" and os.path.exists(db):
                c = sqlite3.connect(db)
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                n, world = c.execute("SELECT last_step, world FROM run").fetchone()
                c.close()
                sizes.append(os.path.getsize(db) / max(n * world, 1))
    off, on = statistics.median(steps["no_record"]), statistics.median(steps["record"])
    print(f"BENCH record_np{np}_step_ms_no_record {off:.2f} ms")
    print(f"BENCH record_np{np}_step_ms_record {on:.2f} ms")
    print(f"BENCH record_np{np}_overhead_pct {(on / off - 1) * 100:.2f} %")
    if sizes:
        print(f"BENCH store_bytes_per_step_per_rank {statistics.median(sizes):.0f} B")

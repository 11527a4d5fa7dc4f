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
    BENCH record_<np>_recorder_cpu_pct <pct> %
    BENCH record_<np>_recorder_core_pct <pct> %
    BENCH record_<np>_overhead_in_run_pct <pct> %

The last is the recorder's own CPU time (its thread, `tptop-recorder` in world rank 0: its schedstat
run time) as a share of the CPU time of every rank of the job: what recording takes from training
on a machine whose cores the ranks fill, without the wall-clock noise of a shared host. It is read
in one more recorded run after the timed rounds, never during them: the poller that reads /proc
takes CPU of its own, which on a machine the ranks fill would be charged to recording (it made a
`small` TP=2 step 10 % slower in the timed runs when it ran during them). `recorder_core_pct` is
the recorder's CPU time over that run's wall time: the most recording can add to a step when the
ranks fill every core (a rank the recorder preempts holds its group back by as long).

The in-run figure compares recording on and off a few seconds apart inside one run, which
cancels the drift of a shared host that separate runs suffer: with TPTOP_RECORDER_BENCH_DUTY_S=4
the recorder records only in even 4-second blocks of wall-clock time; the steps wholly inside
even blocks are compared with those wholly inside odd ones (IN_RUN_STEPS, default 160 steps;
IN_RUN_RUNS runs, default 3, the median of their figures).
"""
import json, os, shlex, sqlite3, statistics, subprocess, sys, tempfile, time

def cpu_ns(task_dir):
    """Time a thread has run, in ns (/proc/.../schedstat; None when it is gone)."""
    try:
        with open(task_dir + "/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def run_measuring_recorder(cmd, env, job):
    """Runs cmd; returns (completed process, recorder CPU s, every rank's CPU s). The ranks are
    found once (the first scan of /proc that sees them); after that only their threads' schedstat
    files are read, every 50 ms."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ranks, recorder, pids = {}, {}, []
    while p.poll() is None:
        if not pids:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                except OSError:
                    continue
                if argv[0].endswith(b"tptrain") and job.encode() in argv:
                    pids.append(pid)
        for pid in pids:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                t = cpu_ns(f"/proc/{pid}/task/{tid}")
                if t is None:
                    continue
                ranks[tid] = t
                if tid not in recorder:
                    try:
                        with open(f"/proc/{pid}/task/{tid}/comm") as f:
                            if f.read().strip() != "tptop-recorder":
                                continue
                    except OSError:
                        continue
                recorder[tid] = t
        time.sleep(0.05)
    out, err = p.communicate()
    done = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    return done, sum(recorder.values()) / 1e9, sum(ranks.values()) / 1e9

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
    # the recorder's CPU share, from one more recorded run that is not timed
    job = f"bench-rec-{os.getpid()}-cpu"
    cmd = ["mpirun", "--oversubscribe", "-np", str(np), os.path.join(binary, "tptrain")] + common + ["--quiet", "--job", job]
    began = time.monotonic()
    p, recorder_cpu, ranks_cpu = run_measuring_recorder(cmd, env, job)
    wall = time.monotonic() - began
    subprocess.run([os.path.join(binary, "tptop"), "gc", job], capture_output=True)
    if p.returncode != 0:
        sys.exit(f"bench_record: the measuring run failed: {' '.join(cmd)}\n{p.stderr.strip()}")
    # recording on and off inside one run, in alternate 4-second blocks
    duty, in_run = 4.0, []
    for k in range(int(os.environ.get("IN_RUN_RUNS", "3"))):
        job = f"bench-rec-{os.getpid()}-duty{k}"
        log = os.path.join(tmp, job + ".jsonl")
        # COMMON's --steps replaced: the blocks need a run of minutes
        others = [a for i, a in enumerate(common) if a != "--steps" and (i == 0 or common[i - 1] != "--steps")]
        steps_arg = ["--steps", os.environ.get("IN_RUN_STEPS", "160")]
        cmd = ["mpirun", "--oversubscribe", "-np", str(np), os.path.join(binary, "tptrain")] + others + steps_arg + \
              ["--quiet", "--job", job, "--log", log]
        d = subprocess.run(cmd, env=dict(env, TPTOP_RECORDER_BENCH_DUTY_S=str(duty)), capture_output=True, text=True)
        subprocess.run([os.path.join(binary, "tptop"), "gc", job], capture_output=True)
        if d.returncode != 0:
            sys.exit(f"bench_record: the in-run comparison failed: {' '.join(cmd)}\n{d.stderr.strip()}")
        blocks = {0: [], 1: []}
        for x in [json.loads(l) for l in open(log)][2:]:
            end = x["unix_ns"] / 1e9
            first, last = int((end - x["step_ms"] / 1e3) // duty), int(end // duty)
            if first == last:
                blocks[first % 2].append(x["step_ms"])
        if blocks[0] and blocks[1]:
            in_run.append((statistics.median(blocks[0]) / statistics.median(blocks[1]) - 1) * 100)
    off, on = statistics.median(steps["no_record"]), statistics.median(steps["record"])
    print(f"BENCH record_np{np}_step_ms_no_record {off:.2f} ms")
    print(f"BENCH record_np{np}_step_ms_record {on:.2f} ms")
    print(f"BENCH record_np{np}_overhead_pct {(on / off - 1) * 100:.2f} %")
    if sizes:
        print(f"BENCH store_bytes_per_step_per_rank {statistics.median(sizes):.0f} B")
    if ranks_cpu > 0:
        print(f"BENCH record_np{np}_recorder_cpu_pct {recorder_cpu / ranks_cpu * 100:.3f} % "
              f"({recorder_cpu:.3f} s of {ranks_cpu:.1f} s)")
        print(f"BENCH record_np{np}_recorder_core_pct {recorder_cpu / wall * 100:.3f} % "
              f"({recorder_cpu:.3f} s in {wall:.1f} s)")
    if in_run:
        print(f"BENCH record_np{np}_overhead_in_run_pct {statistics.median(in_run):.2f} % "
              f"(runs: {', '.join(f'{v:+.2f}' for v in in_run)})")

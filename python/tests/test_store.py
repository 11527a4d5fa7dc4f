"""The Python writer's run store: the same schema as tptop's, every step recorded, opt-out,
one warning for an unusable store, and kill -9 at random points leaving a readable store that
lacks at most the last second. `tptop export RUN` reads what Python recorded."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

from support import Job, REPO, binary, job_name, python_env, remove, run

from tptop_telemetry import Reader

WRITER = """
import sys, time
from tptop_telemetry import Job, gpt2_shards
name, steps, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
j = Job.create(name, world_size=2, tp=2, total_steps=steps, model=dict(layers=2, heads=2, channels=32, vocab=65, batch=2, seq=16),
               settings={"lr": "0.01"}, shards=gpt2_shards(2, 32, 2, 66, 16, 2))
ws = [j.rank_writer(0), j.rank_writer(1, local_rank=1)]
for i in range(1, steps + 1):
    for w in ws:
        w.step(step=i, loss=5 - i * 1e-3, lr=0.01, tokens=32, step_ms=1.5 + w.world_rank, comm_ms=0.25)
    if i % 50 == 0:
        ws[0].event(kind="checkpoint_saved", text=f"ck/step_{i}", step=i)
    time.sleep(delay)
for w in ws:
    w.finish()
j.close()
"""


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="st-pystore-")
        self.env = dict(python_env(), TPTOP_RUNS=self.dir)

    def tearDown(self):
        subprocess.run(["rm", "-rf", self.dir])

    def writer(self, name, steps, delay, env=None):
        return subprocess.Popen([sys.executable, "-c", WRITER, name, str(steps), str(delay)], env=env or self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def test_every_step_is_recorded_and_tptop_exports_it(self):
        name = job_name("store")
        p = self.writer(name, 300, 0)
        out, err = p.communicate(timeout=60)
        remove(name)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(err, "")
        db = sqlite3.connect(os.path.join(self.dir, name + ".sqlite"))
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("SELECT state, last_step, writer, world, records_lost FROM run").fetchone(),
                         ("finished", 300, "python", 2, 0))
        self.assertEqual([r[0] for r in db.execute("SELECT step FROM series ORDER BY step")], list(range(1, 301)))
        self.assertEqual(db.execute("SELECT COUNT(*) FROM rank_steps").fetchone()[0], 600)
        self.assertEqual(db.execute("SELECT step_ns FROM series WHERE step = 7").fetchone()[0], 2_500_000)
        # the clock offset of the recording (dates the run after a reboot) and the shard layout
        offset = db.execute("SELECT wall_minus_boot_ns FROM run").fetchone()[0]
        self.assertLess(abs(offset - (time.time_ns() - time.monotonic_ns())), 50_000_000)
        tensors = db.execute("SELECT tensor, name, shape, split, split_dim, ranges, descriptions FROM tensors "
                             "ORDER BY tensor").fetchall()
        self.assertEqual([t[1] for t in tensors[:5]], ["wte", "wpe", "ln1w", "ln1b", "qkvw"])
        self.assertEqual(tensors[0][2:6], ("[66,32]", "vocab", 0, "[[[0,33]],[[33,66]]]"))
        # tptop reads the Python-written store: every step record of both ranks, the events
        r = run([binary("tptop"), "export", name, "--format", "jsonl"], env=self.env)
        lines = [json.loads(l) for l in r.stdout.splitlines()]
        steps = [(o["rank"], o["step"]) for o in lines if o["type"] == "step"]
        self.assertEqual(sorted(steps), sorted((r, s) for r in (0, 1) for s in range(1, 301)))
        self.assertEqual([o["text"] for o in lines if o["type"] == "event"],
                         [f"ck/step_{i}" for i in range(50, 301, 50)])
        rank1 = next(o for o in lines if o["type"] == "step" and o["rank"] == 1 and o["step"] == 9)
        self.assertEqual((rank1["step_ns"], rank1["comm_ns"], rank1["tokens"]), (2_500_000, 250_000, 32))
        listed = run([binary("tptop"), "runs", "--plain", name], env=self.env).stdout.split("\t")
        self.assertEqual(listed[:2], [name, "finished"])

    def test_opt_out_and_an_unusable_store(self):
        name = job_name("noop")
        p = self.writer(name, 5, 0, env=dict(self.env, TPTOP_NO_RECORD="1"))
        p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0)
        remove(name)
        self.assertEqual(os.listdir(self.dir), [])
        bad = os.path.join(self.dir, "file")
        open(bad, "w").write("x")
        p = self.writer(name, 5, 0, env=dict(self.env, TPTOP_RUNS=bad))
        out, err = p.communicate(timeout=30)
        remove(name)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn("is not a directory", err)

    def test_kill_9_at_random_points_loses_at_most_the_last_second(self):
        rng = random.Random()
        for i in range(20):
            name = job_name(f"kill{i}")
            p = self.writer(name, 100000, 0.002)
            path = os.path.join(self.dir, name + ".sqlite")
            deadline = time.time() + 30
            while not os.path.exists(path) and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.3, 1.5))
            p.send_signal(signal.SIGKILL)
            killed = time.monotonic_ns()
            p.communicate(timeout=30)
            reader = Reader(name)
            published = [r["step"] for r in reader.poll(0)[0] if r["type"] == "step" and r["timestamp_ns"] + 1e9 <= killed]
            reader.close()
            remove(name)
            db = sqlite3.connect(path)
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            steps = [r[0] for r in db.execute("SELECT step FROM series ORDER BY step")]
            self.assertEqual(steps, list(range(1, len(steps) + 1)), f"kill {i}: a hole")
            if published:
                self.assertGreaterEqual(len(steps), max(published), f"kill {i}")
            db.close()


if __name__ == "__main__":
    unittest.main()

"""The two languages against each other (needs the release tptop in .build/release):
Swift writes, Python reads; Python writes, Swift reads (`tptop watch`, `export`, `ls`);
a Python job steered by `tptop pause / resume / checkpoint / stop`; and the multi-process
stress test — a Python writer at full speed, Swift readers that check every record."""

import datetime
import json
import os
import re
import struct
import subprocess
import sys
import time
import unittest

import support
from support import HERE, binary, run
from tptop_telemetry import Job, Reader, gpt2_shards


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def same(a, b, key):
    if isinstance(a, float) or isinstance(b, float):
        return f32(float(a)) == f32(float(b)) or (a != a and b != b)
    return a == b


class WithTptop(unittest.TestCase):
    """A test against the built tptop, with a job name of its own (removed afterwards)."""
    tag = "job"

    def setUp(self):
        self.tptop = binary("tptop")
        self.job = support.job_name(self.tag)

    def tearDown(self):
        support.remove(self.job)


class SwiftWritesPythonReads(WithTptop):
    tag = "s2p"

    def test_every_record_reads_as_tptop_exports_it(self):
        out = run([binary("tptop-dev"), "synthetic-job", "--job", self.job, "--ranks", "2", "--tp", "2",
                   "--steps", "25", "--step-ms", "1"]).stdout
        self.assertIn("finished at step 25", out)
        exported = [json.loads(x) for x in run([self.tptop, "export", self.job, "--format", "jsonl"]).stdout.splitlines()]
        table = [json.loads(x) for x in run([binary("tptop-dev"), "step-fields"]).stdout.splitlines()]
        r = Reader(self.job)
        self.assertEqual((r.info["world_size"], r.info["tp"], r.info["total_steps"]), (2, 2, 25))
        mine = []
        for rank in range(2):
            recs, lost, corrupt = r.poll(rank)
            self.assertEqual((lost, corrupt), (0, 0))
            self.assertEqual(r.rank_status(rank)["state"], "finished")
            mine += recs
        self.assertEqual(len(mine), len(exported))
        steps = 0
        for py, sw in zip(mine, exported):
            self.assertEqual(py["type"], sw["type"])
            self.assertEqual((py["rank"], py["index"], py["step"], py["timestamp_ns"]),
                             (sw["rank"], sw["index"], sw["step"], sw["timestamp_ns"]))
            # the wall clock export adds: the boot-clock timestamp moved by (now − boot now)
            wall = time.time_ns() - (time.monotonic_ns() - py["timestamp_ns"])
            self.assertLess(abs(sw["unix_ns"] - wall), 2_000_000_000, (sw["unix_ns"], wall))
            iso = datetime.datetime.strptime(sw["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
            self.assertEqual(int(iso.timestamp() * 1000), sw["unix_ns"] // 1_000_000)
            if py["type"] == "step":
                steps += 1
                # the --log line's names and units, derived from the record
                for name in ("step", "forward", "backward", "optimizer", "comm"):
                    self.assertAlmostEqual(sw[name + "_ms"], py[name + "_ns"] / 1e6, places=3)
                if py["step_ns"] > 0:
                    self.assertAlmostEqual(sw["tokens_per_s"], py["tokens"] / (py["step_ns"] / 1e9), delta=0.01)
                # the keys derived from the record (the step field table's log forms), and the
                # record fields under their new names (collective_count = allreduce_count)
                columns = {f["name"]: f["column"] for f in table if f["recorded"]}
                derived = {"unix_ns", "time"} | ({k for f in table for k in f["log"]}
                                                 - set(columns) - set(columns.values()))
                for k, v in sw.items():
                    key = {"allreduce_hist": "histogram", **columns}.get(k, k)
                    if key in ("type",) or key in derived:
                        continue
                    self.assertTrue(same(py[key], v, key), f"{key}: python {py[key]} swift {v}")
            elif py["type"] == "event":
                self.assertEqual((py["kind"], py["text"]), (sw["event"], sw["text"]))
        self.assertEqual(steps, 50)
        r.close()


class PythonWritesSwiftReads(WithTptop):
    tag = "p2s"

    def test_tptop_export_watch_and_ls_read_python_records(self):
        job = Job.create(self.job, world_size=2, tp=2, dp=1, total_steps=8,
                         model=dict(layers=2, channels=64, heads=4, vocab=256, max_seq=64, batch=4, seq=64),
                         shards=gpt2_shards(2, 64, 4, 256, 64, 2))
        writers = [job.rank_writer(0), job.rank_writer(1, local_rank=1)]
        written = []
        for step in range(1, 9):
            for rank, w in enumerate(writers):
                f = dict(tokens=256, loss=4.0 - step / 8, lr=1e-3 * step, grad_norm=0.5 + rank,
                         compute_busy=0.75, gflops=3.25, step_ms=10.0 + rank, forward_ms=3, backward_ms=5,
                         optimizer_ms=1, comm_ms=1.5, data_ms=0.25, allreduce_count=12, allreduce_bytes=4096 * step,
                         allreduce_total_ns=1_500_000, allreduce_max_ns=400_000, rss_bytes=10 << 20,
                         param_bytes=1 << 20, grad_bytes=1 << 20, optimizer_bytes=2 << 20,
                         activation_bytes=3 << 20, histogram=[step + b for b in range(16)])
                w.step(step=step, **f)
                written.append((rank, step, f))
        writers[0].checkpointing()
        writers[0].checkpoint_saved(8, "/tmp/ck/step_8")
        writers[1].event("rank 1 says hello ✓")
        writers[0].tensor_stats(8, [(i + 1.0, i / 2, 1e-3) for i in range(16)])
        for w in writers:
            w.finish()

        lines = [json.loads(x) for x in run([self.tptop, "export", self.job, "--format", "jsonl"]).stdout.splitlines()]
        steps = [x for x in lines if x["type"] == "step"]
        self.assertEqual(len(steps), 16)
        by_key = {(x["rank"], x["step"]): x for x in steps}
        for rank, step, f in written:
            sw = by_key[(rank, step)]
            for k, v in f.items():
                key = k[:-3] + "_ns" if k.endswith("_ms") else {"histogram": "allreduce_hist"}.get(k, k)
                want = int(v * 1e6) if k.endswith("_ms") else v
                self.assertTrue(same(want, sw[key], key), f"{key}: wrote {want}, tptop read {sw[key]}")
        events = [x for x in lines if x["type"] == "event"]
        self.assertEqual([(e["rank"], e["event"], e["text"]) for e in events],
                         [(0, "checkpoint_saved", "/tmp/ck/step_8"), (1, "error", "rank 1 says hello ✓")])
        stats = [x for x in lines if x["type"] == "tensor_stats"]
        self.assertEqual(len(stats), 1)
        self.assertEqual(len(stats[0]["tensors"]), 16)
        self.assertEqual(stats[0]["tensors"][4]["weight_norm"], 5.0)

        watch = run([self.tptop, "watch", self.job, "--from-start"], timeout=30).stdout
        self.assertEqual(len(re.findall(r"^step \d+/8 ", watch, re.M)), 8, watch)
        self.assertIn("slowest r1 11.0 ms", watch)
        self.assertIn(f"job {self.job} finished at step 8", watch)
        ls = run([self.tptop, "ls"]).stdout
        row = next(x for x in ls.splitlines() if x.startswith(self.job + " "))
        self.assertIn("finished", row)
        self.assertIn("t2×d1", row)
        self.assertIn("8/8", row)
        job.close()


class PythonJobObeysTptop(WithTptop):
    tag = "ctl"

    def setUp(self):
        super().setUp()
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
        super().tearDown()

    def start(self, rank):
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "control_job.py"), self.job, str(rank), "2",
                              "100000", "20"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(p)
        return p

    def last_steps(self, r):
        return [r.rank_status(k)["last_step"] for k in range(2)]

    def test_pause_resume_checkpoint_stop(self):
        self.start(0)
        time.sleep(0.3)
        self.start(1)
        r = None
        deadline = time.monotonic() + 20
        while r is None or min(self.last_steps(r)) < 3:
            self.assertLess(time.monotonic(), deadline, "the Python job did not start")
            try:
                r = r or Reader(self.job)
            except Exception:
                pass
            time.sleep(0.05)

        out = run([self.tptop, "pause", self.job, "--timeout", "20"]).stdout
        self.assertRegex(out, rf"job {self.job} paused at step \d+")
        paused = self.last_steps(r)
        time.sleep(0.5)
        self.assertEqual(self.last_steps(r), paused, "a paused rank advanced")
        for k in range(2):
            st = r.rank_status(k)
            self.assertEqual((st["state"], st["acked_state"]), ("paused", "pause"))

        out = run([self.tptop, "checkpoint", self.job, "--timeout", "20"]).stdout
        self.assertIn("checkpoint", out)
        self.assertEqual(r.rank_status(0)["checkpoints_saved"], 1)

        run([self.tptop, "resume", self.job, "--timeout", "20"])
        time.sleep(0.5)
        self.assertTrue(all(a > b for a, b in zip(self.last_steps(r), paused)), "ranks did not resume")

        out = run([self.tptop, "stop", self.job, "--timeout", "20"]).stdout
        self.assertIn(f"job {self.job} stopped", out)
        for p in self.procs:
            self.assertEqual(p.wait(timeout=20), 0)
        summary = run([self.tptop, "ls"]).stdout
        self.assertEqual(next(x for x in summary.splitlines() if x.startswith(self.job)).split()[1], "stopped")
        r.close()


class StressPythonWriterSwiftReaders(unittest.TestCase):
    """One Python writer at full speed, three `tptop-dev stress-reader` processes that check every
    accepted record field by field against its index: no torn record accepted, and
    accepted + lost == written exactly."""

    def setUp(self):
        self.tptop = binary("tptop")
        self.jobs = []

    def tearDown(self):
        for j in self.jobs:
            support.remove(j)

    def round(self, slots, seconds, interval_us):
        job = support.job_name(f"stress{slots}")
        self.jobs.append(job)
        readers = [subprocess.Popen([binary("tptop-dev"), "stress-reader", "--job", job, "--interval-us", str(interval_us)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
        writer = run([sys.executable, os.path.join(HERE, "stress_writer.py"), job, str(slots), str(seconds)],
                     timeout=seconds + 60)
        written = int(re.search(r"WROTE (\d+)", writer.stdout).group(1))
        totals = dict(reads=0, accepted=0, lost=0, torn=0)
        for p in readers:
            out = p.communicate(timeout=60)[0]
            self.assertEqual(p.returncode, 0, out)
            m = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", out))
            self.assertEqual((m["corrupt"], m["mismatched"], m["outoforder"]), (0, 0, 0), out)
            self.assertEqual(m["head"], written, out)
            self.assertEqual(m["accepted"] + m["lost"], written, out)
            for k in totals:
                totals[k] += m[k]
        sys.stderr.write(f"\n  stress {slots} slots: written {written}, {totals}\n")
        return written, totals

    def test_no_torn_record_and_exact_lost_counts(self):
        written, t = self.round(16, 3, 0)
        self.assertGreater(t["lost"], 0, "a 16-slot ring at full speed must lap its readers")
        written, t = self.round(256, 3, 3000)
        self.assertGreater(t["accepted"], 0)
        self.round(4096, 2, 100)


if __name__ == "__main__":
    unittest.main()

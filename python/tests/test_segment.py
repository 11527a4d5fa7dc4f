"""The Python writer alone: creation, opening, refusals, rings with exact lost counts, the
control page and the pause/resume/stop acknowledgement (the Python reader checks)."""

import os
import re
import stat
import struct
import subprocess
import sys
import threading
import time
import unittest

import support
from tptop_telemetry import Job, JobNameTaken, Reader, TelemetryError, check_platform, gpt2_shards
from tptop_telemetry import layout as L

MODEL = dict(layers=2, channels=64, heads=4, vocab=256, max_seq=64, batch=4, seq=64)


class SegmentTests(unittest.TestCase):
    def setUp(self):
        self.job = support.job_name("seg")

    def tearDown(self):
        support.remove(self.job)

    def create(self, **kw):
        args = dict(world_size=2, tp=2, dp=1, total_steps=100, model=MODEL)
        args.update(kw)
        return Job.create(self.job, **args)

    def poke(self, off, fmt, value):
        with open("/dev/shm/tptop." + self.job, "r+b") as f:
            f.seek(off)
            f.write(struct.pack("<" + fmt, value))

    def test_a_rank_another_live_process_writes_is_refused(self):
        # issue 25, item 13: two live writers claimed one rank
        job = self.create()
        w = job.rank_writer(0)
        self.assertIs(type(w).__name__, "RankWriter")
        job.rank_writer(0)  # this process again: its own rank
        h = job.geometry.rank_header_offset(1)
        job._m.set(h + L.RankHeader.PID, "I", os.getppid())
        job._m.set_u64(h + L.RankHeader.LOCAL_RANK, 1 | L.RankHeader.ATTACHED_VALUE << 32)
        with self.assertRaises(TelemetryError) as e:
            job.rank_writer(1)
        self.assertIn(f"rank 1 of job '{self.job}' is already written by process {os.getppid()}", str(e.exception))
        self.assertNotIn("\n", str(e.exception))
        job.close()

    def test_create_publishes_the_description_with_mode_0600(self):
        shards = gpt2_shards(2, 64, 4, 256, 64, 2)
        job = self.create(shards=shards)
        st = os.stat("/dev/shm/tptop." + self.job)
        self.assertEqual(stat.S_IMODE(st.st_mode) & 0o077, 0)
        r = Reader(self.job)
        self.assertEqual((r.info["world_size"], r.info["tp"], r.info["dp"], r.info["total_steps"]), (2, 2, 1, 100))
        self.assertEqual(r.info["model"]["padded_vocab"], 256)
        self.assertEqual(len(r.info["shards"]), 16)
        qkv = r.info["shards"][4]
        self.assertEqual((qkv["name"], qkv["split"], qkv["split_dim"]), ("qkvw", "column", 1))
        self.assertEqual(qkv["ranks"][1], [(32, 64), (96, 128), (160, 192)])
        self.assertEqual(qkv["descriptions"][0], "heads 0–1 of 4: q/k/v rows 0–31 of each 64")
        r.close()
        job.close()

    def test_control_declarations_set_their_feature_bits(self):
        # the bits JobSchema's RunFeatures defines (read from the Swift source, not restated)
        src = open(os.path.join(support.REPO, "Sources/JobSchema/RunFeatures.swift")).read()
        for name, const in (("checkpointAtStopBit", L.FEATURE_CHECKPOINT_AT_STOP), ("ignoresControlBit", L.FEATURE_IGNORES_CONTROL)):
            m = re.search(name + r": UInt64 = 1 << (\d+)", src)
            self.assertIsNotNone(m, name)
            self.assertEqual(const, 1 << int(m.group(1)), name)
        for kw, want in ((dict(), 0), (dict(honours_control=True), 0),
                         (dict(honours_control=False), L.FEATURE_IGNORES_CONTROL),
                         (dict(checkpoint_at_stop=True, features=L.features(overlap_tp=True)),
                          L.FEATURE_CHECKPOINT_AT_STOP | L.FEATURE_OVERLAP_TP)):
            job = self.create(**kw)
            r = Reader(self.job)
            self.assertEqual(r.info["features"], want, kw)
            r.close()
            job.close()
            support.remove(self.job)

    def test_features_word_reaches_the_reader(self):
        word = L.features(sequence_parallel=True, distributed_optimizer=True, recompute="full")
        self.assertEqual(word, 0b1011)
        self.assertEqual(L.features(overlap_grad_reduce=True, overlap_tp=True), 0b110000)
        job = self.create(dp=1, features=word)
        r = Reader(self.job)
        self.assertEqual((r.info["version_minor"], r.info["features"]), (3, word))
        r.close()
        job.close()

    def test_refusals_are_one_line(self):
        self.create().close()
        cases = [
            (lambda: self.create(), "already exists"),
            (lambda: Job.create("bad/name"), "invalid job name"),
            (lambda: Job.create(support.job_name("x"), world_size=2, tp=3), "tp 3 outside"),
            (lambda: Job.create(support.job_name("x"), world_size=4, tp=2, dp=1), "must equal the world size"),
            (lambda: Job.create(support.job_name("x"), slot_count=100), "power of two"),
            (lambda: Job.create(support.job_name("x"), model=dict(layer=2)), "unknown model keys"),
            (lambda: Job.open(support.job_name("missing"), wait=0), "no job"),
        ]
        for call, text in cases:
            with self.assertRaises(TelemetryError) as c:
                call()
            self.assertIn(text, str(c.exception))
            self.assertNotIn("\n", str(c.exception))

    def test_a_taken_name_is_its_own_error_with_tptrains_exit_status(self):
        self.create().close()
        with self.assertRaises(JobNameTaken) as c:
            self.create()
        self.assertIsInstance(c.exception, TelemetryError)
        self.assertEqual(c.exception.exit_status, 4)  # TrainingExit.jobNameTaken
        self.assertIn("choose another job name", str(c.exception))

    def test_under_tptop_launch_an_uncaught_refusal_is_one_line(self):
        self.create().close()
        script = "from tptop_telemetry import Job\nJob.create(world_size=1, record=False)\nprint('created')\n"
        for launched in (True, False):
            env = support.python_env()
            env.pop("TPTOP_JOB", None)
            if launched:
                env["TPTOP_JOB"] = self.job  # what tptop launch sets
            else:
                script = script.replace("Job.create(", f"Job.create({self.job!r}, ")
            r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("created", r.stdout)
            if launched:
                self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
                self.assertNotIn("Traceback", r.stderr)
                self.assertRegex(r.stderr, r"^-c: segment /dev/shm/tptop\.\S+ already exists; choose another job name")
            else:
                # a plain library user keeps Python's own report of an uncaught exception
                self.assertIn("Traceback", r.stderr)
                self.assertIn("JobNameTaken", r.stderr)

    def test_foreign_incompatible_and_damaged_segments_are_refused(self):
        self.create().close()
        for off, fmt, value, text in [
            (L.Header.OWNER_UID, "I", os.geteuid() + 1, "belongs to uid"),
            (L.Header.VERSION_MAJOR, "I", 2, "major version 2"),
            (L.Header.RINGS_OFFSET, "Q", 4096, "corrupt (ring offset 4096"),
            (L.Header.READY, "Q", 0, "not ready"),
            (L.Header.MAGIC, "Q", 0x1234, "wrong magic"),
        ]:
            with open("/dev/shm/tptop." + self.job, "rb") as f:
                saved = f.read(L.Header.SIZE)
            self.poke(off, fmt, value)
            with self.assertRaises(TelemetryError) as c:
                Job.open(self.job, wait=0)
            self.assertIn(text, str(c.exception))
            with open("/dev/shm/tptop." + self.job, "r+b") as f:
                f.write(saved)
        Job.open(self.job, wait=0).close()
        os.truncate("/dev/shm/tptop." + self.job, 8192)
        with self.assertRaises(TelemetryError) as c:
            Job.open(self.job, wait=0)
        self.assertIn("truncated", str(c.exception))

    def test_other_architectures_are_refused(self):
        check_platform("x86_64")
        for m in ("aarch64", "arm64", "ppc64le", "riscv64"):
            with self.assertRaises(TelemetryError) as c:
                check_platform(m)
            self.assertIn("x86-64 store ordering", str(c.exception))

    def test_open_waits_for_the_creator(self):
        threading.Timer(0.2, lambda: self.create()).start()
        job = Job.open(self.job, wait=5)
        self.assertEqual(job.info["world_size"], 2)
        job.close()

    def test_rings_overwrite_oldest_with_exact_lost_counts(self):
        job = self.create(slot_count=16)
        w0, w1 = job.rank_writer(0), job.rank_writer(1, local_rank=1)
        r = Reader(self.job)
        for i in range(1, 51):
            w0.step(step=i, loss=i / 10, tokens=4)
        w1.event("hello")
        recs, lost, corrupt = r.poll(0)
        self.assertEqual((len(recs), lost, corrupt), (16, 34, 0))
        self.assertEqual([x["step"] for x in recs], list(range(35, 51)))
        recs, lost, _ = r.poll(1)
        self.assertEqual((recs[0]["kind"], recs[0]["text"], lost), ("error", "hello", 0))
        st = r.rank_status(1)
        self.assertTrue(st["attached"])
        self.assertEqual((st["local_rank"], st["pid"]), (1, os.getpid()))
        self.assertEqual(r.rank_status(0)["state"], "running")
        self.assertEqual(r.rank_status(0)["last_step"], 50)
        # a reopened writer continues the ring where it stood
        w0b = Job.open(self.job).rank_writer(0)
        self.assertEqual(w0b.write_index, 50)
        r.close()
        job.close()

    def test_nonfinite_loss_adds_an_event_and_finish_marks_the_state(self):
        job = self.create()
        w = job.rank_writer(0)
        w.step(step=1, loss=float("nan"))
        w.finish()
        r = Reader(self.job)
        recs, _, _ = r.poll(0)
        self.assertEqual([x["type"] for x in recs], ["step", "event"])
        self.assertEqual(recs[1]["kind"], "nonfinite_loss")
        self.assertEqual(r.rank_status(0)["state"], "finished")
        r.close()
        job.close()

    def test_wait_while_paused_acknowledges_like_tptrain(self):
        job = self.create(world_size=1, tp=1)
        w = job.rank_writer(0)
        w.step(step=3, loss=1.0)
        ctl = job.geometry.control_offset
        job._m.set_u64(ctl + L.Control.DESIRED_STATE, 1)  # what `tptop pause` does (by CAS)
        seen = []

        def resume_later():
            deadline = time.monotonic() + 5
            r = Reader(self.job)
            while time.monotonic() < deadline:
                st = r.rank_status(0)
                if st["state"] == "paused":
                    seen.append((st["acked_state"], st["acked_step"]))
                    job._m.set_u64(ctl + L.Control.CHECKPOINT_REQUESTS, 1)
                    time.sleep(0.05)
                    job._m.set_u64(ctl + L.Control.DESIRED_STATE, 0)
                    break
                time.sleep(0.01)
            r.close()

        threading.Thread(target=resume_later).start()
        saved = []
        d = w.wait_while_paused(3, on_checkpoint=lambda s: saved.append(s) or f"/ck/{s}")
        self.assertEqual(seen, [("pause", 3)])
        self.assertEqual(d.desired, "run")
        self.assertEqual(saved, [3])
        r = Reader(self.job)
        st = r.rank_status(0)
        self.assertEqual((st["state"], st["acked_state"], st["checkpoints_saved"]), ("running", "run", 1))
        kinds = [x.get("kind") for x in r.poll(0)[0]]
        self.assertEqual(kinds, [None, "paused", "checkpoint_saved", "resumed"])
        self.assertEqual(job._m.u64(ctl + L.Control.OBSERVED_DESIRED_STATE), 0)
        job._m.set_u64(ctl + L.Control.DESIRED_STATE, 2)
        self.assertEqual(job.desired_state(), "stop")
        self.assertEqual(w.wait_while_paused(3).desired, "stop")
        self.assertEqual(r.rank_status(0)["acked_state"], "stop")
        self.assertEqual(r.poll(0)[0][-1]["kind"], "stopped")
        r.close()
        job.close()

    def test_sync_applies_rank_zero_decision_everywhere(self):
        job = self.create()
        w0, w1 = job.rank_writer(0), job.rank_writer(1, local_rank=1)
        job._m.set_u64(job.geometry.control_offset + L.Control.CHECKPOINT_REQUESTS, 5)
        shared = {}

        def sync(values):  # what broadcast_control does across processes
            return shared.setdefault("v", values)

        d0 = w0.control(sync)
        d1 = w1.control(sync)
        self.assertEqual((d0, d1), ((("run", True)), ("run", True)))
        job.close()


if __name__ == "__main__":
    unittest.main()

"""The writer times steps the caller does not time: the gap between step() calls, less the time
paused in wait_while_paused. The clock is stubbed, so the expected numbers are exact."""

import time
import unittest
from unittest import mock

import support
from tptop_telemetry import Job, Reader
from tptop_telemetry import writer as W


class FakeClock:
    """monotonic_ns under the test's control; sleep advances it."""

    def __init__(self):
        self.ns = 1_000_000_000

    def monotonic_ns(self):
        return self.ns

    def sleep(self, s):
        self.ns += int(s * 1e9)

    def advance_ms(self, ms):
        self.ns += int(ms * 1e6)


class WriterTimesSteps(unittest.TestCase):
    def setUp(self):
        self.job = support.job_name("timing")
        self.clock = FakeClock()
        patcher = mock.patch.object(W, "time", self.clock)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.addCleanup(support.remove, self.job)

    def steps(self):
        r = Reader(self.job)
        r.seek_to_start()
        records, _, _ = r.poll(0)
        r.close()
        return [x for x in records if x["type"] == "step"]

    def test_step_ms_is_the_gap_between_calls(self):
        job = Job.create(self.job, total_steps=10)
        w = job.rank_writer(0)
        w.step(step=1, loss=3.0, tokens=512)
        self.clock.advance_ms(250)
        w.step(step=2, loss=2.9, tokens=512)
        self.clock.advance_ms(125)
        w.step(step=3, loss=2.8, tokens=512, step_ms=40)  # given: kept as given
        self.clock.advance_ms(100)
        w.step(step=4, loss=2.7, tokens=512)
        s = self.steps()
        self.assertEqual([x["step_ns"] for x in s], [0, 250_000_000, 40_000_000, 100_000_000])
        # tokens/s as every reader computes it: tokens over the step time
        self.assertEqual(s[1]["tokens"] / (s[1]["step_ns"] / 1e9), 2048.0)
        w.finish()
        job.close()

    def test_time_paused_is_not_step_time(self):
        job = Job.create(self.job, total_steps=10)
        w = job.rank_writer(0)
        w.step(step=1, loss=3.0, tokens=64)
        self.clock.advance_ms(30)
        # a pause requested: wait_while_paused sleeps (on the fake clock) until resumed
        polls = iter(["pause"] * 5 + ["run"])
        with mock.patch.object(job, "read_control", lambda observe=True: (next(polls), 0)):
            d = w.wait_while_paused(1, interval=2.0)
        self.assertEqual(d.desired, "run")
        self.clock.advance_ms(20)
        w.step(step=2, loss=2.9, tokens=64)
        self.assertEqual(self.steps()[-1]["step_ns"], 50_000_000, "30 ms before the pause + 20 ms after it")
        w.finish()
        job.close()


if __name__ == "__main__":
    unittest.main()

"""End to end with PyTorch: `tptop launch --runner torchrun` starts examples/torch_tp_gpt.py
with 2 ranks (TP=2, gloo) in a real terminal (tmux) and attaches; `tptop watch` sees both
ranks' records; `tptop pause` stops both ranks at the same step; `tptop checkpoint` saves;
`tptop resume` and `tptop stop`; the dashboard's Shards view lists the example's shards.

Needs a Python with torch (``$TPTOP_TORCH_PYTHON``, this Python, or /usr/bin/python3 — the
Debian python3-torch that `make test-deps` installs), tmux, and the release tptop.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import support
from support import REPO, binary, run, tool
from tptop_telemetry import Reader


def torch_python():
    """A Python interpreter that imports torch with gloo."""
    candidates = [os.environ.get("TPTOP_TORCH_PYTHON"), os.environ.get("PYTHON"), shutil.which("python3"),
                  "/usr/bin/python3"]
    for py in filter(None, candidates):
        try:
            r = subprocess.run([py, "-c", "import torch.distributed as d; assert d.is_gloo_available()"],
                               capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return py
    support.missing("a Python with torch and gloo (make test-deps installs python3-torch)")


class TorchEndToEnd(unittest.TestCase):
    def setUp(self):
        self.python = torch_python()
        self.tptop = binary("tptop")
        tool("tmux")
        self.job = support.job_name("torch")
        self.socket = f"tptop-pye2e-{os.getpid()}"
        self.dir = tempfile.mkdtemp(prefix="tptop-pye2e-")
        self.watch = None

    def tearDown(self):
        try:
            r = Reader(self.job)
            subprocess.run([self.tptop, "stop", self.job, "--no-wait"], capture_output=True)
            time.sleep(1)
            for k in range(2):
                pid = r.rank_status(k)["pid"]
                if pid > 0:
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            r.close()
        except Exception:
            pass
        if self.watch is not None:
            if self.watch.poll() is None:
                self.watch.kill()
            self.watch.wait()
            self.watch.stdout.close()
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
        support.remove(self.job)
        shutil.rmtree(self.dir, ignore_errors=True)

    def tmux(self, *args):
        return run(["tmux", "-L", self.socket, *args], check=False).stdout

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "e2e")

    def wait_for(self, what, ok, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = ok()
            if v:
                return v
            time.sleep(0.1)
        self.fail(f"timed out waiting for {what}; screen:\n{self.screen()}\nlog:\n{self.log_tail()}")

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, self.job + ".log")) as f:
                return "".join(f.readlines()[-30:])
        except OSError as e:
            return str(e)

    def reader(self):
        try:
            return Reader(self.job)
        except Exception:
            return None

    def test_launch_watch_pause_checkpoint_resume_shards_stop(self):
        # torchrun (or python3 -m torch.distributed.run) of the torch Python comes first on PATH
        path = os.path.dirname(self.python) + os.pathsep + os.environ.get("PATH", "")
        self.tmux("new-session", "-d", "-s", "e2e", "-x", "120", "-y", "40",
                  f"cd {REPO} && env PATH={path} TPTOP_LOG_DIR={self.dir} XDG_CONFIG_HOME={self.dir} "
                  f"TERM=xterm-256color LANG=C.UTF-8 "
                  f"bash --norc --noprofile")
        time.sleep(0.3)
        ck = os.path.join(self.dir, "ck")
        self.tmux("send-keys", "-t", "e2e",
                  f"{self.tptop} launch --runner torchrun --np 2 --job {self.job} --refresh 0.2 -- "
                  f"examples/torch_tp_gpt.py --tp 2 --steps 100000 --checkpoint-dir {ck}", "Enter")
        r = self.wait_for("the segment", self.reader, timeout=120)
        self.assertEqual((r.info["world_size"], r.info["tp"], r.info["dp"]), (2, 2, 1))
        self.assertEqual([s["name"] for s in r.info["shards"]][:5], ["wte", "wpe", "ln1w", "ln1b", "qkvw"])

        def steps():
            return [r.rank_status(k)["last_step"] for k in range(2)]

        self.wait_for("both ranks stepping", lambda: min(steps()) >= 3, timeout=120)

        # tptop watch prints a step once every rank reported it: both ranks' records arrive
        self.watch = subprocess.Popen([self.tptop, "watch", self.job, "--from-start", "--interval-ms", "50"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(self.watch.stdout), daemon=True)
        reader.start()
        self.wait_for("watch step lines", lambda: sum(x.startswith("step ") for x in lines) >= 3)
        self.assertTrue(any(" slowest r" in x and "allreduce max" in x for x in lines), lines)
        for k in range(2):
            recs = [x for x in r.poll(k)[0] if x["type"] == "step"]
            self.assertGreater(len(recs), 0)
            self.assertGreater(recs[-1]["allreduce_count"], 0)
            self.assertGreater(recs[-1]["rss_bytes"], 0)
            self.assertGreater(recs[-1]["param_bytes"], 0)

        # the dashboard is attached
        s = self.wait_for("the dashboard", lambda: (lambda s: s if self.job in s and "t2×d1" in s else None)(self.screen()))

        # pause: both ranks stop at the same step and stay there
        out = run([self.tptop, "pause", self.job, "--timeout", "60"], timeout=90).stdout
        self.assertIn(f"job {self.job} paused at step", out)
        paused = steps()
        sys.stderr.write(f"\n  {out.strip()}; ranks at steps {paused}\n")
        self.assertEqual(paused[0], paused[1], "ranks paused at different steps")
        for k in range(2):
            st = r.rank_status(k)
            self.assertEqual((st["state"], st["acked_state"], st["acked_step"]), ("paused", "pause", paused[0]))
        time.sleep(2)
        self.assertEqual(steps(), paused, "a paused rank advanced")

        # a checkpoint while paused
        out = run([self.tptop, "checkpoint", self.job, "--timeout", "60"], timeout=90).stdout
        self.assertIn("checkpoint", out)
        for k in range(2):
            self.assertTrue(os.path.exists(os.path.join(ck, f"step_{paused[0]:08d}", f"rank_{k}.pt")))

        # resume: both advance again
        run([self.tptop, "resume", self.job, "--timeout", "60"], timeout=90)
        self.wait_for("both ranks advancing", lambda: min(steps()) > paused[0] + 2)

        # the Shards view lists the example's tensors and each rank's slice
        self.tmux("send-keys", "-t", "e2e", "4")
        # (a capture can land while the terminal is still drawing the new view: wait for all of it)
        s = self.wait_for("the shard view", lambda: (lambda s: s if "parameter tensors" in s and "heads 2–3 of 4" in s else None)(self.screen()), 20)
        self.assertIn("qkvw", s)
        self.assertTrue("tp0 slice" in s and "tp1 slice" in s, s)
        self.assertTrue("heads 0–1 of 4" in s and "heads 2–3 of 4" in s, s)

        # stop: both ranks finish at the same step; watch ends
        out = run([self.tptop, "stop", self.job, "--timeout", "60"], timeout=90).stdout
        self.assertIn(f"job {self.job} stopped at step", out)
        sys.stderr.write(f"  {out.strip()}; watch saw {sum(x.startswith('step ') for x in lines)} step lines\n")
        self.assertEqual(self.watch.wait(timeout=30), 0)
        reader.join(timeout=10)  # the process has exited; its last lines may still be in the pipe
        self.assertTrue(any(x.startswith(f"job {self.job} stopped at step") for x in lines), lines)
        for k in range(2):
            self.assertEqual(r.rank_status(k)["state"], "finished")
        self.assertEqual(len(set(steps())), 1)
        self.tmux("send-keys", "-t", "e2e", "q")
        self.wait_for("the dashboard to exit", lambda: f"left {self.job}" in self.screen() or
                      f"detached from {self.job}" in self.screen(), 30)
        r.close()


if __name__ == "__main__":
    unittest.main()


class TorchExampleRefusals(unittest.TestCase):
    """examples/torch_tp_gpt.py under torchrun, without a terminal."""

    def setUp(self):
        self.python = torch_python()
        self.job = support.job_name("torchtaken")
        self.dir = tempfile.mkdtemp(prefix="tptop-pytaken-")

    def tearDown(self):
        support.remove(self.job)
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_a_taken_job_name_ends_every_rank_with_one_line(self):
        # a finished (or live) job's segment holds the name: both ranks exit 4, as tptrain's,
        # with one line from the rank that met it and no traceback
        subprocess.run([sys.executable, "-c", f"from tptop_telemetry import Job; Job.create({self.job!r}, record=False)"],
                       env=support.python_env(), check=True, timeout=60)
        env = support.python_env()
        env.pop("TPTOP_JOB", None)
        r = subprocess.run([self.python, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
                            "--redirects", "1", "--tee", "1", "examples/torch_tp_gpt.py",
                            "--tp", "2", "--steps", "3", "--job", self.job, "--checkpoint-dir", os.path.join(self.dir, "ck")],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
        self.assertNotEqual(r.returncode, 0, r.stderr[-2000:])
        # (torchrun itself reports a failed child with a traceback of its own agent)
        self.assertNotIn('torch_tp_gpt.py", line', r.stderr)
        self.assertNotIn("TelemetryError", r.stderr)
        lines = [line for line in r.stderr.splitlines() if line.startswith("torch_tp_gpt:")]
        self.assertEqual(lines, [f"torch_tp_gpt: segment /dev/shm/tptop.{self.job} already exists; choose another job "
                                 "name or run `tptop gc`"], r.stderr[-2000:])
        self.assertEqual(len(re.findall(r"exitcode\s*:\s*4 ", r.stderr)), 2, r.stderr[-2000:])

"""Shared test helpers: the repository, the built binaries, unique job names, tool checks.

A test that needs a tool (the release tptop, torch, tmux) skips without it locally, and fails
under CI=true, where the README's test command installs everything.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python"))

from tptop_telemetry import Job  # noqa: E402

# jobs the tests create record into a store of their own, never the user's
os.environ.setdefault("TPTOP_RUNS", tempfile.mkdtemp(prefix="tptop-test-runs-"))

BIN_DIR = os.environ.get("TPTOP_BIN_DIR", os.path.join(REPO, ".build", "release"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_counter = [0]


def job_name(tag):
    """A job name unique to this process and call."""
    _counter[0] += 1
    return f"py-{tag}-{os.getpid()}-{_counter[0]}"


def missing(what):
    """Skips the test (fails it under CI=true, where nothing may be missing)."""
    if IN_CI:
        raise AssertionError(f"needed under CI=true but missing: {what}")
    raise unittest.SkipTest(f"needs {what}")


def binary(name):
    """Path of a built binary (.build/release or $TPTOP_BIN_DIR)."""
    p = os.path.join(BIN_DIR, name)
    if not os.access(p, os.X_OK):
        missing(f"{p} (build it: swift build -c release --product {name})")
    return p


def tool(name):
    p = shutil.which(name)
    if p is None:
        missing(f"{name} on PATH")
    return p


def run(args, timeout=60, check=True, **kw):
    """Runs a command; returns its CompletedProcess with text output."""
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def remove(job):
    try:
        Job.remove(job)
    except Exception:
        pass


def python_env():
    """The environment for child Python processes: the library on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(REPO, "python") + os.pathsep + env.get("PYTHONPATH", "")
    return env

"""Write tptop's telemetry segment from Python, so any (PyTorch) job shows up in ``tptop``.

Standard library only. Three lines in a training loop::

    from tptop_telemetry import Job
    w = Job.create("myjob", world_size=1, tp=1, total_steps=1000).rank_writer(0)
    w.step(step=i, loss=loss, lr=lr, tokens=B * T, step_ms=ms)     # every step

See docs/TELEMETRY.md ("Python writer") for the multi-rank form, control (pause, resume,
checkpoint, stop) and the memory-ordering assumption (x86-64 only).
"""

import os as _os

from .errors import JobNameTaken, TelemetryError, install_launch_hook, report_and_exit
from .job import Job
from .reader import Reader
from .records import checksum
from .segment import check_platform, default_job_name, is_valid_name
from .shards import gpt2_shards
from .writer import AllReduceStats, Decision, ProcessMemory, RankWriter

__all__ = ["Job", "RankWriter", "Reader", "TelemetryError", "JobNameTaken", "report_and_exit",
           "AllReduceStats", "Decision", "ProcessMemory", "gpt2_shards", "checksum", "check_platform", "default_job_name",
           "is_valid_name"]
__version__ = "1.1.0"

if _os.environ.get("TPTOP_JOB"):
    install_launch_hook()

"""Child process of the control tests: one rank of a job that obeys the control page with
``wait_while_paused`` (each rank reads the page itself: no collective library here).

    python3 control_job.py JOB RANK WORLD STEPS STEP_MS
"""

import sys
import time

import support  # noqa: F401
from tptop_telemetry import Job


def main():
    name, rank, world, steps, step_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    if rank == 0:
        job = Job.create(name, world_size=world, tp=world, total_steps=steps,
                         model=dict(layers=1, heads=2, channels=8, vocab=16, max_seq=8, batch=1, seq=8))
    else:
        job = Job.open(name)
    with job.rank_writer(rank, local_rank=rank) as w:
        step = 0
        while step < steps:
            d = w.wait_while_paused(step, on_checkpoint=lambda s: f"/tmp/{name}/step_{s}")
            if d.checkpoint:
                w.checkpointing()
                w.checkpoint_saved(step, f"/tmp/{name}/step_{step}")
            if d.desired == "stop":
                break
            time.sleep(step_ms / 1e3)
            step += 1
            w.step(step=step, loss=4.0 / step, lr=1e-3, tokens=16, step_ms=step_ms)
        w.finish()
    print(f"rank {rank} ended at step {step}", flush=True)


if __name__ == "__main__":
    main()

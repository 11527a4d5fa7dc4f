"""Child process of the stress test: writes the pattern of `tptop-dev stress-writer`
(Sources/tptop/TelemetryDiagnostics.swift, StressPattern) at full speed for SECONDS, then marks
the rank finished and prints WROTE <records>.

    python3 stress_writer.py JOB SLOTS SECONDS
"""

import sys
import time

import support  # noqa: F401
from tptop_telemetry import Job

M64 = (1 << 64) - 1
EVENT_EVERY = 1000


def fields(i):
    """StressPattern.record(i): every field a function of the index."""
    return dict(
        timestamp_ns=(i * 0x9E3779B97F4A7C15) & M64, tokens=i * 3, loss=(i % 100000) / 7, lr=(i % 1000) / 1e6,
        grad_norm=float(i % 777), step_ns=i ^ 0x55555555, forward_ns=i + 1, backward_ns=i + 2,
        optimizer_ns=i + 3, comm_ns=i + 4, data_ns=i + 5, allreduce_count=i % 4096, allreduce_bytes=i * 7,
        allreduce_total_ns=i * 11, allreduce_max_ns=i * 13, histogram=[(i + b) & 0xFFFFFFFF for b in range(16)],
        rss_bytes=~i & M64, param_bytes=(i << 1) & M64, grad_bytes=(i << 2) & M64, optimizer_bytes=(i << 3) & M64,
        activation_bytes=(i << 4) & M64, compute_busy=(i % 100) / 100, gflops=float(i % 333))


def main():
    job_name, slots, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    job = Job.create(job_name, world_size=1, tp=1, total_steps=0, slot_count=slots, preset="stress",
                     model=dict(layers=1, heads=1, channels=1, vocab=1, max_seq=1, batch=1, seq=1))
    w = job.rank_writer(0)
    w.set_state("running")
    time.sleep(0.3)  # readers attach
    # the record path of RankWriter.step/event without its clock reads and /proc memory reads,
    # so the pattern's timestamps and memory fields stay a function of the index
    from tptop_telemetry.records import encode_event, encode_step
    publish = w._publish
    end = time.monotonic() + seconds
    i = 0
    while True:
        for _ in range(256):
            if i % EVENT_EVERY == EVENT_EVERY - 1:
                publish(encode_event("checkpoint_saved", i, 0, i, f"event {i}"))
            else:
                f = fields(i)
                publish(encode_step(i, 0, f.pop("timestamp_ns"), **f))
            i += 1
        if time.monotonic() >= end:
            break
    w.finish()
    print(f"WROTE {i}", flush=True)


if __name__ == "__main__":
    main()

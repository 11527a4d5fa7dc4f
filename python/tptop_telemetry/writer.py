"""``RankWriter``: one rank's header and ring (docs/TELEMETRY.md, Protocols).

Seqlock write of record i, as the Swift ``RankWriter.publish``: seq = 2i+1, the 248-byte
payload, seq = 2i+2, write index = i+1. Python has no fences; the order holds because each of
these is a separate store issued in program order (one-word stores through a ``memoryview``
cast to u64, the payload by one ``memcpy`` into the mmap) and x86-64 makes stores visible to
other cores in program order (total store order). ``check_platform`` refuses other machines.
The writer never blocks and never waits for a reader.
"""

import math
import os
import time
from collections import namedtuple

from . import layout as L
from .errors import TelemetryError
from .layout import RankHeader as R, Slot
from .device import DeviceProbe
from .records import encode_event, encode_step, encode_tensor_stats
from .segment import put_text

#: What a step boundary decided: ``desired`` is "run", "pause" or "stop"; ``checkpoint`` is true
#: when the dashboard asked for a checkpoint since the previous boundary.
Decision = namedtuple("Decision", "desired checkpoint")

_MS_FIELDS = ("step", "forward", "backward", "optimizer", "comm", "data", "allreduce_total", "allreduce_max")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class ProcessMemory:
    """The resident set size of this process, from /proc/self/statm (one pread per call)."""

    def __init__(self):
        try:
            self._fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._fd = -1

    def rss_bytes(self):
        if self._fd < 0:
            return 0
        try:
            return int(os.pread(self._fd, 128, 0).split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            return 0

    def close(self):
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class AllReduceStats:
    """All-reduce count, bytes, total and max latency and the log2-µs latency histogram of one
    step (the meaning of the step record's all-reduce fields). ``record`` each all-reduce, pass
    ``allreduce=stats`` to ``RankWriter.step``, which resets it."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.count = 0
        self.bytes = 0
        self.total_ns = 0
        self.max_ns = 0
        self.histogram = [0] * L.HISTOGRAM_BUCKETS

    @staticmethod
    def bucket(ns):
        """Histogram bucket of a latency: floor(log2(µs)), 0 below 2 µs, at most 15."""
        us = int(ns) // 1000
        return 0 if us <= 0 else min(us.bit_length() - 1, L.HISTOGRAM_BUCKETS - 1)

    def record(self, ns, nbytes=0):
        ns = int(ns)
        self.count += 1
        self.bytes += int(nbytes)
        self.total_ns += ns
        self.max_ns = max(self.max_ns, ns)
        self.histogram[self.bucket(ns)] += 1

    def fields(self):
        """The step-record fields, by keyword."""
        return dict(allreduce_count=self.count, allreduce_bytes=self.bytes, allreduce_total_ns=self.total_ns,
                    allreduce_max_ns=self.max_ns, histogram=list(self.histogram))


class RankWriter:
    """Writes one world rank's records and header. Take it from ``Job.rank_writer``."""

    def __init__(self, job, world_rank, local_rank):
        self.job = job
        self.world_rank = world_rank
        self._m = job._m
        g = job.geometry
        self._h = g.rank_header_offset(world_rank)
        self._ring = g.ring_offset(world_rank)
        self._mask = g.slot_count - 1
        self._words = self._m.words
        self._mm = self._m.mm
        self._index_word = (self._h + R.WRITE_INDEX) >> 3
        self._next = self._m.u64(self._h + R.WRITE_INDEX)
        self._memory = ProcessMemory()
        self._device = DeviceProbe()
        self._last_step = 0
        self._previous_step_ns = None  # monotonic ns of the previous step() call
        self._paused_ns = 0  # ns paused in wait_while_paused since then
        self._state = "starting"
        self._checkpoints_seen = 0
        m, h = self._m, self._h
        m.set(h + R.PID, "I", os.getpid())
        m.set(h + R.WORLD_RANK, "I", world_rank)
        put_text(m.mm, h + R.HOST, os.uname().nodename, R.HOST_CAPACITY)
        m.set_u64(h + R.STATE, 0)
        m.set_u64(h + R.HEARTBEAT_NS, time.monotonic_ns())
        m.set_u64(h + R.ACKED_DESIRED_STATE, 0)
        # `attached` shares a word with the local rank: one store publishes both
        m.set_u64(h + R.LOCAL_RANK, (local_rank & 0xFFFFFFFF) | R.ATTACHED_VALUE << 32)

    @property
    def write_index(self):
        """Records published so far."""
        return self._next

    def _publish(self, payload):
        i = self._next
        slot = self._ring + (i & self._mask) * Slot.SIZE
        seq = slot >> 3
        self._words[seq] = 2 * i + 1
        self._mm[slot + Slot.PAYLOAD:slot + Slot.SIZE] = payload
        self._words[seq] = 2 * i + 2
        self._next = i + 1
        self._words[self._index_word] = i + 1

    def _set(self, off, v):
        self._words[(self._h + off) >> 3] = v & 0xFFFFFFFFFFFFFFFF

    # Records

    def step(self, step, loss, lr=0.0, tokens=0, allreduce=None, **fields):
        """Publishes one step record, beats and acknowledges "run" at ``step``.

        Keyword fields: grad_norm, compute_busy (0…1), gflops; times as ``<name>_ms`` or
        ``<name>_ns`` for step, forward, backward, optimizer, comm, data, allreduce_total,
        allreduce_max; allreduce_count, allreduce_bytes, histogram (16 log2-µs buckets); memory
        in bytes: rss_bytes (read from /proc when not given), param_bytes, grad_bytes,
        optimizer_bytes, activation_bytes; comm_peer_wait_us (of comm, the exposed communication,
        the µs spent waiting for a slower peer; allreduce_total is the time collectives were in
        flight). ``allreduce``: an ``AllReduceStats`` (then reset).
        Without ``step_ms``/``step_ns`` the writer times the step itself: the wall time since the
        previous ``step()`` call, less the time spent paused in ``wait_while_paused`` (the first
        step has no previous call and stays unmeasured), so tokens/s and the ETA are real.
        A non-finite loss also publishes a nonfinite_loss event.
        """
        now = time.monotonic_ns()
        for name in _MS_FIELDS:
            ms = fields.pop(name + "_ms", None)
            if ms is not None:
                fields[name + "_ns"] = int(ms * 1e6)
        if "step_ns" not in fields and self._previous_step_ns is not None:
            fields["step_ns"] = max(0, now - self._previous_step_ns - self._paused_ns)
        self._previous_step_ns = now
        self._paused_ns = 0
        if allreduce is not None:
            for k, v in allreduce.fields().items():
                fields.setdefault(k, v)
            allreduce.reset()
        if "rss_bytes" not in fields:
            fields["rss_bytes"] = self._memory.rss_bytes()
        if self._state == "starting":
            self.set_state("running")
        self._publish(encode_step(step, self.world_rank, now, tokens=tokens, loss=loss, lr=lr, **fields))
        self._last_step = step
        self._publish_device()
        self._set(R.LAST_STEP, step)
        self._set(R.HEARTBEAT_NS, now)
        self._acknowledge("run", step)
        if not math.isfinite(loss):
            self.event(kind="nonfinite_loss", step=step)

    def _publish_device(self):
        """torch.cuda's memory (and NVML's utilisation) into the rank header, when there is a GPU."""
        reading = self._device.read()
        if reading is None:
            return
        allocated, reserved, peak, util = reading
        self._set(R.DEVICE_MEMORY_ALLOCATED, allocated)
        self._set(R.DEVICE_MEMORY_RESERVED, reserved)
        self._set(R.DEVICE_MEMORY_PEAK, peak)
        self._m.set(self._h + R.DEVICE_UTILIZATION, "I", 0 if util is None else int(round(min(100.0, max(0.0, util)))) + 1)

    def event(self, text="", kind="error", step=None):
        """Publishes an event. ``kind``: checkpoint_saved, paused, resumed, stopped,
        nonfinite_loss or error (the segment's only free-text kind); ``text`` is cut to 208
        UTF-8 bytes; ``step`` defaults to the last step written."""
        if kind not in L.EVENT_KINDS:
            raise TelemetryError(f"invalid argument: event kind '{kind}' (one of {', '.join(L.EVENT_KINDS)})")
        s = self._last_step if step is None else step
        self._publish(encode_event(kind, s, self.world_rank, time.monotonic_ns(), text))
        self.heartbeat()

    def tensor_stats(self, step, norms, first_tensor=0):
        """Publishes the norms of this rank's parameter shards: ``norms`` holds one (weight
        norm, gradient norm, update ratio) per tensor of the job description from
        ``first_tensor`` on (split into records of 17)."""
        norms = list(norms)
        for k in range(0, len(norms), Slot.STATS_CAPACITY):
            self._publish(encode_tensor_stats(step, self.world_rank, time.monotonic_ns(), first_tensor + k,
                                              norms[k:k + Slot.STATS_CAPACITY]))

    # Header

    def heartbeat(self):
        """Stores a fresh heartbeat (readers judge a silent rank whose pid is gone failed)."""
        self._set(R.HEARTBEAT_NS, time.monotonic_ns())

    def set_state(self, state):
        """Sets the rank state: starting, running, paused, checkpointing, finished or failed."""
        if state not in L.RANK_STATES:
            raise TelemetryError(f"invalid argument: rank state '{state}' (one of {', '.join(L.RANK_STATES)})")
        self._state = state
        self._set(R.STATE, L.RANK_STATES.index(state))

    def _acknowledge(self, desired, step):
        self._set(R.ACKED_STEP, step)
        self._set(R.ACKED_DESIRED_STATE, L.DESIRED_STATES.index(desired))

    def checkpoint_saved(self, step=None, path=""):
        """Publishes a checkpoint_saved event, counts the checkpoint (``tptop checkpoint`` waits
        for that count) and returns to the state before ``set_state("checkpointing")``."""
        s = self._last_step if step is None else step
        self.event(path, kind="checkpoint_saved", step=s)
        self._set(R.LAST_CHECKPOINT_STEP, s)
        self._set(R.CHECKPOINTS_SAVED, self._m.u64(self._h + R.CHECKPOINTS_SAVED) + 1)
        if self._state == "checkpointing":
            self.set_state(self._resume_state)

    def checkpointing(self):
        """Marks the rank checkpointing until ``checkpoint_saved``."""
        if self._state != "checkpointing":
            self._resume_state = self._state
            self.set_state("checkpointing")

    _resume_state = "running"

    def finish(self, failed=False):
        """Marks the rank finished (or failed); the segment stays for late readers."""
        self.set_state("failed" if failed else "finished")
        self.heartbeat()
        self._memory.close()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if self._state not in ("finished", "failed"):
            if value is not None and not isinstance(value, (KeyboardInterrupt, SystemExit)):
                self.event(f"{kind.__name__}: {value}", kind="error")
            self.finish(failed=value is not None and not isinstance(value, SystemExit))

    # Control

    def control(self, sync=None):
        """The decision at a step boundary. World rank 0 reads the control page; ``sync``
        shares its [desired, checkpoint counter] with every rank so all apply it at the same
        step (``tptop_telemetry.torch.broadcast_control`` with torch.distributed). Without
        ``sync`` each rank reads the page itself (fine for one process; ranks may then see a
        change one step apart)."""
        if sync is None or self.world_rank == 0:
            desired, counter = self.job.read_control(observe=self.world_rank == 0)
        else:
            desired, counter = "run", 0
        if sync is not None:
            raw, counter = sync([L.DESIRED_STATES.index(desired), counter])
            desired = L.DESIRED_STATES[int(raw)] if 0 <= int(raw) < len(L.DESIRED_STATES) else "run"
        checkpoint = int(counter) != self._checkpoints_seen
        self._checkpoints_seen = int(counter)
        return Decision(desired, checkpoint)

    def wait_while_paused(self, step=None, sync=None, interval=0.01, on_checkpoint=None):
        """Call at every step boundary. Applies the dashboard's decision the way tptrain does:

        - pause: state paused, "pause" acknowledged at ``step``, a paused event; then heartbeats
          every ``interval`` s until resumed (state running, "run" acknowledged, a resumed
          event) or stopped. A checkpoint asked for meanwhile calls ``on_checkpoint(step)``
          (which returns the path) when given.
        - stop: a stopped event and "stop" acknowledged; the caller ends the loop and calls
          ``finish()``.

        Returns the ``Decision`` (desired "run" or "stop"; ``checkpoint`` true when a checkpoint
        is still to be written by the caller).
        """
        s = self._last_step if step is None else step
        d = self.control(sync)
        if d.desired == "pause":
            paused_at = time.monotonic_ns()
            self.set_state("paused")
            self._acknowledge("pause", s)
            self.event(kind="paused", step=s)
            pending = d.checkpoint
            while d.desired == "pause":
                if pending and on_checkpoint is not None:
                    self.checkpointing()
                    self.checkpoint_saved(s, on_checkpoint(s) or "")
                    pending = False
                self.heartbeat()
                time.sleep(interval)
                d = self.control(sync)
                pending = pending or d.checkpoint
            d = Decision(d.desired, pending)
            self._paused_ns += time.monotonic_ns() - paused_at
            if d.desired == "run":
                self.set_state("running")
                self._acknowledge("run", s)
                self.event(kind="resumed", step=s)
        if d.desired == "stop":
            self.event(kind="stopped", step=s)
            self._acknowledge("stop", s)
        return d

"""``Job``: one process's handle on a job's segment — creation (local rank 0), opening (the
other local ranks), the control page, and one ``RankWriter`` per rank written from here."""

import atexit
import os
import random
import time

from . import layout as L
from .errors import TelemetryError
from .reader import Reader
from .store import start_recorder
from .layout import Header as H, Control as C, Geometry
from .segment import (check_platform, check_shard, create_mapping, default_job_name, open_mapping,
                      path_of, put_text, validate, write_shard)

MODEL_KEYS = ("layers", "heads", "channels", "vocab", "padded_vocab", "max_seq", "batch", "seq")
_MODEL_OFFSETS = (H.MODEL_LAYERS, H.MODEL_HEADS, H.MODEL_CHANNELS, H.MODEL_VOCAB,
                  H.MODEL_PADDED_VOCAB, H.MODEL_MAX_SEQ, H.MODEL_BATCH, H.MODEL_SEQ)


def _job_name(name):
    return name or os.environ.get("TPTOP_JOB") or default_job_name()


class Job:
    """A job's telemetry segment, mapped read-write.

    ``Job.create`` on local rank 0, then (after a barrier, or with ``Job.open``'s wait) ``Job.open``
    on the other local ranks; each rank then takes its ``rank_writer``. The name defaults to the
    ``TPTOP_JOB`` environment variable (``tptop launch`` sets it).
    """

    def __init__(self, mapping, geometry, info):
        self._m = mapping
        self.geometry = geometry
        #: The published description: name, world_size, tp, dp, total_steps, model, shards, ...
        self.info = info
        self.name = info["name"]

    @classmethod
    def create(cls, name=None, world_size=1, tp=1, dp=None, total_steps=0, model=None, shards=(),
               slot_count=L.DEFAULT_SLOT_COUNT, preset="python", features=0, honours_control=None,
               checkpoint_at_stop=False, record=True, record_budget_mib=256, settings=None):
        """Creates the segment exclusively (mode 0600) and publishes the description; ``ready``
        is written last.

        ``model``: dict with layers, heads, channels, vocab, max_seq, batch, seq (padded_vocab
        defaults to vocab; missing keys are 0). ``shards``: the shard layout, dicts with name,
        shape, split ("replicated", "column", "row", "vocab"), split_dim, ranks (per TP rank a
        list of half-open (start, end) ranges along split_dim) and descriptions (per TP rank);
        see ``gpt2_shards``. ``features``: the header's feature word (``layout.features``
        builds it: sequence parallelism, distributed optimizer, recomputation).
        ``honours_control``: False declares that the loop never calls ``wait_while_paused``, so
        tptop says that pause and stop do nothing instead of waiting for them (None, the
        default, claims nothing: tptop then notices steps going on past a pause).
        ``checkpoint_at_stop``: True when the loop writes a checkpoint before it stops on request
        (tptop's stop prompt says so). Raises ``TelemetryError`` (one line) on a bad argument,
        an existing segment or a full /dev/shm.

        ``record``: also record the job in the run store (``store.py``; ``TPTOP_NO_RECORD=1``
        turns it off too), within ``record_budget_mib``; ``settings`` (a dict) is what
        ``tptop compare`` shows of the run's configuration.
        """
        check_platform()
        name = _job_name(name)
        path_of(name)  # checks the name
        dp = dp if dp is not None else world_size // max(tp, 1)
        shards = [dict(s) for s in shards]
        problem = Geometry.problem(world_size, tp, len(shards), slot_count)
        if problem:
            raise TelemetryError(f"invalid argument: {problem}")
        if dp < 1 or tp * dp != world_size:
            raise TelemetryError(f"invalid argument: t {tp} × d {dp} must equal the world size {world_size}")
        if total_steps < 0:
            raise TelemetryError(f"invalid argument: total steps {total_steps} < 0")
        model = dict(model or {})
        unknown = set(model) - set(MODEL_KEYS) - {"preset"}
        if unknown:
            raise TelemetryError(f"invalid argument: unknown model keys {sorted(unknown)} (use {', '.join(MODEL_KEYS)})")
        model.setdefault("padded_vocab", model.get("vocab", 0))
        for k in MODEL_KEYS:
            v = model.get(k, 0)
            if not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
                raise TelemetryError(f"invalid argument: model {k} {v!r} out of range")
        for s in shards:
            check_shard(s, tp)
        g = Geometry(world_size, tp, len(shards), slot_count)
        m = create_mapping(name, g.total_size)
        try:
            # posix_fallocate zero-fills: write the fields, then the magic, then `ready`
            m.set(H.VERSION_MAJOR, "I", L.VERSION_MAJOR)
            m.set(H.VERSION_MINOR, "I", L.VERSION_MINOR)
            words = list(g.header_words().values()) + [
                (H.SLOT_COUNT, slot_count), (H.CREATION_TIME_NS, time.time_ns()),
                (H.INCARNATION, random.SystemRandom().getrandbits(64)), (H.TOTAL_STEPS, total_steps),
                (H.FEATURES, features | (L.FEATURE_IGNORES_CONTROL if honours_control is False else 0)
                 | (L.FEATURE_CHECKPOINT_AT_STOP if checkpoint_at_stop else 0))]
            for off, v in words:
                m.set_u64(off, v)
            for off, v in ((H.OWNER_UID, os.geteuid()), (H.WORLD_SIZE, world_size), (H.TP, tp), (H.DP, dp),
                           (H.SHARD_COUNT, len(shards)), (H.SHARD_ENTRY_SIZE, g.shard_entry_size),
                           (H.CREATOR_PID, os.getpid())):
                m.set(off, "I", v)
            for off, k in zip(_MODEL_OFFSETS, MODEL_KEYS):
                m.set(off, "I", model.get(k, 0))
            put_text(m.mm, H.JOB_NAME, name, H.JOB_NAME_CAPACITY)
            put_text(m.mm, H.PRESET_NAME, model.get("preset", preset), H.PRESET_NAME_CAPACITY)
            for i, s in enumerate(shards):
                write_shard(m, g.job_description_offset + i * g.shard_entry_size, s, tp)
            m.set_u64(H.MAGIC, L.MAGIC)
            m.set_u64(H.READY, L.READY_VALUE)
            geometry, info = validate(m, name, check_owner=False)
        except BaseException:
            m.close()
            raise
        job = cls(m, geometry, info)
        if record:
            job.recorder = start_recorder(
                name, lambda: Reader(name), total_steps=total_steps, world=world_size, tp=tp, dp=dp, model=model,
                preset=model.get("preset", preset), features=features, budget_mib=record_budget_mib, settings=settings)
            if job.recorder is not None:
                atexit.register(job._finish_recording)
        return job

    #: The run store's recorder of this job (the creating process only), or None.
    recorder = None

    def _finish_recording(self, state=None):
        if self.recorder is not None:
            self.recorder.finish(state)
            self.recorder = None

    @classmethod
    def open(cls, name=None, wait=10.0):
        """Opens a segment another process created, waiting up to ``wait`` seconds for it to
        exist and be ready (the ranks of a torchrun job start together). Raises
        ``TelemetryError`` when it is missing, foreign, incompatible or corrupt."""
        check_platform()
        name = _job_name(name)
        deadline = time.monotonic() + wait
        while True:
            try:
                m = open_mapping(name, writable=True)
                try:
                    geometry, info = validate(m, name, check_owner=True)
                except BaseException:
                    m.close()
                    raise
                return cls(m, geometry, info)
            except TelemetryError as e:
                retry = "not ready" in str(e) or "no job" in str(e)
                if not retry or time.monotonic() >= deadline:
                    raise
            time.sleep(0.02)

    @staticmethod
    def remove(name):
        """Removes a job's segment name from /dev/shm (mappings stay valid)."""
        try:
            os.unlink(path_of(name))
        except FileNotFoundError:
            raise TelemetryError(f"no job '{name}' on this machine (no /dev/shm/tptop.{name})") from None

    def rank_writer(self, world_rank, local_rank=0):
        """Claims world rank ``world_rank``'s header and ring for this process (pid, host, local
        rank, attached). Its state starts as "starting" and becomes "running" at the first step."""
        from .writer import RankWriter
        if not 0 <= world_rank < self.geometry.world_size:
            raise TelemetryError(f"invalid argument: rank {world_rank} outside 0..<{self.geometry.world_size}")
        # a rank has one writer: a header attached by another live process stays its own
        h = self.geometry.rank_header_offset(world_rank)
        attached = self._m.u64(h + L.RankHeader.LOCAL_RANK) >> 32 == L.RankHeader.ATTACHED_VALUE
        pid = self._m.u32(h + L.RankHeader.PID)
        if attached and pid not in (0, os.getpid()) and _alive(pid):
            raise TelemetryError(
                f"rank {world_rank} of job '{self.name}' is already written by process {pid}; "
                f"give each process its own rank (RANK / LOCAL_RANK)")
        return RankWriter(self, world_rank, local_rank)

    # Control page. Readers change it (by compare-and-swap and atomic add); the job only reads.

    def _control(self, off):
        return self._m.u64(self.geometry.control_offset + off)

    def read_control(self, observe=True):
        """(desired state name, checkpoint-request counter) from the control page. With
        ``observe`` the values are recorded as seen (what world rank 0 does; readers show it)."""
        raw = self._control(C.DESIRED_STATE)
        ck = self._control(C.CHECKPOINT_REQUESTS)
        desired = L.DESIRED_STATES[raw] if raw < len(L.DESIRED_STATES) else "run"
        if observe:
            base = self.geometry.control_offset
            self._m.set_u64(base + C.OBSERVED_DESIRED_STATE, L.DESIRED_STATES.index(desired))
            self._m.set_u64(base + C.OBSERVED_CHECKPOINT_REQUESTS, ck)
        return desired, ck

    def desired_state(self):
        """What the dashboard asks for: "run", "pause" or "stop"."""
        return self.read_control(observe=False)[0]

    def checkpoint_requests(self):
        """The checkpoint-request counter; every increase asks for one checkpoint."""
        return self._control(C.CHECKPOINT_REQUESTS)

    def close(self):
        """Writes the rest of the run to the store, then unmaps the segment (the object stays
        for late readers until `tptop gc`)."""
        self._finish_recording()
        self._m.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _alive(pid):
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True

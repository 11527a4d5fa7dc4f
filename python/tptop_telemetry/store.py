"""The run store from Python: a recorder thread in the job's creating process reads every
rank's ring (as ``Reader`` does) and writes the run into ``<store>/<run>.sqlite`` with the
standard ``sqlite3`` module, in the schema tptop's Swift recorder writes (Sources/RunStore,
docs/STORE.md). ``Job.create(..., record=False)`` or ``TPTOP_NO_RECORD=1`` opts out.

Store directory: ``$TPTOP_RUNS``, else ``$XDG_DATA_HOME/tptop/runs``, else
``~/.local/share/tptop/runs``. A store that cannot be written prints one warning line on stderr
and recording stops; the job goes on.
"""

import json
import os
import re
import sqlite3
import struct
import sys
import threading
import time

SCHEMA_VERSION = 2
SUFFIX = ".sqlite"

# Column names of a step record's fields, in the order of StepColumns.all (Swift); a test holds
# the two together.
STEP_COLUMNS = (
    "loss", "lr", "grad_norm", "tokens", "step_ns", "forward_ns", "backward_ns", "optimizer_ns", "comm_ns",
    "data_ns", "allreduce_count", "allreduce_bytes", "allreduce_total_ns", "allreduce_max_ns", "rss_bytes",
    "param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes", "compute_busy", "gflops",
    "comm_peer_wait_us",
)
_INTEGRAL = set(STEP_COLUMNS) - {"loss", "lr", "grad_norm", "compute_busy", "gflops"}
SERIES_COLUMNS = (
    "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "step_ns", "comm_exposed_ns", "comm_total_ns",
    "rss_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes",
)
_RANK_COLUMNS = [c for name in STEP_COLUMNS for c in (name, name + "_min", name + "_max")]

CREATION = (
    """CREATE TABLE IF NOT EXISTS run (
  id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, job TEXT NOT NULL, writer TEXT NOT NULL,
  state TEXT NOT NULL, started REAL NOT NULL, ended REAL, updated REAL NOT NULL, incarnations INTEGER NOT NULL,
  world INTEGER NOT NULL, tp INTEGER NOT NULL, dp INTEGER NOT NULL, total_steps INTEGER NOT NULL,
  preset TEXT NOT NULL, layers INTEGER, heads INTEGER, channels INTEGER, vocab INTEGER, padded_vocab INTEGER,
  max_seq INTEGER, batch INTEGER, seq INTEGER, features INTEGER NOT NULL DEFAULT 0,
  command_line TEXT NOT NULL DEFAULT '', hosts TEXT NOT NULL DEFAULT '', recorder_pid INTEGER,
  budget_bytes INTEGER NOT NULL, bucket_steps INTEGER NOT NULL DEFAULT 1,
  last_step INTEGER NOT NULL DEFAULT 0, final_loss REAL, best_loss REAL,
  records_lost INTEGER NOT NULL DEFAULT 0, wall_minus_boot_ns INTEGER)""",
    "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS series (step INTEGER PRIMARY KEY, timestamp_ns INTEGER, wall_time REAL, ranks INTEGER, "
    + ", ".join(SERIES_COLUMNS) + ")",
    "CREATE TABLE IF NOT EXISTS rank_steps (rank INTEGER NOT NULL, step INTEGER NOT NULL, last_step INTEGER NOT NULL, "
    "steps INTEGER NOT NULL, ring_index INTEGER, timestamp_ns INTEGER, wall_time REAL, allreduce_hist BLOB, "
    + ", ".join(_RANK_COLUMNS) + ", PRIMARY KEY (rank, step)) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS events (rank INTEGER NOT NULL, ring_index INTEGER, step INTEGER NOT NULL,
  timestamp_ns INTEGER, wall_time REAL, kind TEXT NOT NULL, text TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE IF NOT EXISTS shard_stats (rank INTEGER NOT NULL, step INTEGER NOT NULL, tensor INTEGER NOT NULL,
  ring_index INTEGER, timestamp_ns INTEGER, weight_norm REAL, grad_norm REAL, update_ratio REAL,
  PRIMARY KEY (rank, step, tensor)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS tensors (tensor INTEGER PRIMARY KEY, name TEXT NOT NULL, shape TEXT NOT NULL,
  split TEXT NOT NULL, split_dim INTEGER, ranges TEXT NOT NULL, descriptions TEXT NOT NULL)""",
)
# What brings a file of an older schema version to this one (after CREATION adds new tables).
MIGRATION = {1: ("ALTER TABLE run ADD COLUMN wall_minus_boot_ns INTEGER",)}

def _remove_db_files(path):
    """Removes a database file and its WAL and shared-memory files, where they exist."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass


def _json(value):
    """JSON text as the Swift recorder writes it (no spaces)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}$")


def store_directory(env=None):
    """The store directory the environment names."""
    env = os.environ if env is None else env
    if env.get("TPTOP_RUNS"):
        return env["TPTOP_RUNS"]
    if env.get("XDG_DATA_HOME"):
        return os.path.join(env["XDG_DATA_HOME"], "tptop", "runs")
    return os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "share", "tptop", "runs")


def run_name(directory, job, restart=False):
    """(name, note): a restart (a supervisor incarnation ``<job>.r<k>`` or ``<job>.r<k>.<8 hex>``,
    the rule of Swift's ``IncarnationName``; or ``restart``) records into ``<job>``; another
    job whose name a stored run has gets the first free ``-2``, ``-3``, … and a note saying so."""
    base, m = job, re.match(r"^(.+)\.r([1-9][0-9]{0,8})(\.[0-9a-fA-F]{8})?$", job)
    if m:
        base, restart = m.group(1), True

    def exists(n):
        return os.path.exists(os.path.join(directory, n + SUFFIX))

    if restart or not exists(base):
        return base, None
    k = 2
    while exists(f"{base}-{k}"):
        k += 1
    return f"{base}-{k}", f"a stored run named '{base}' exists; this job is recorded as '{base}-{k}'"


def bucket_steps(steps, world, budget_bytes, row_bytes=320, bucket_row_bytes=700):
    """Steps per per-rank row that keep the run within its budget (as RunAccumulator.bucketSteps)."""
    series = steps * 120.0
    room = max(budget_bytes * 0.9 - series, budget_bytes * 0.1)
    k = 1
    while steps * world * (row_bytes if k == 1 else bucket_row_bytes) / k > room and k < 1 << 20:
        k *= 2
    return k


def _value(v, integral):
    if v is None or v != v or v in (float("inf"), float("-inf")):
        return None
    if integral and float(v).is_integer() and abs(v) < 9e18:
        return int(v)
    return float(v)


class _Bucket:
    def __init__(self, rec, first):
        self.rank, self.first, self.last, self.count = rec["rank"], first, rec["step"], 0
        self.index, self.ts = rec["index"], 0
        n = len(STEP_COLUMNS)
        self.sum, self.min, self.max = [0.0] * n, [float("inf")] * n, [float("-inf")] * n
        self.hist = [0] * 16
        self.dirty = True
        self.add(rec)

    def add(self, rec):
        self.count += 1
        self.last = max(self.last, rec["step"])
        self.ts = rec["timestamp_ns"]
        for i, c in enumerate(STEP_COLUMNS):
            v = float(rec[c])
            self.sum[i] += v
            self.min[i] = min(self.min[i], v)
            self.max[i] = max(self.max[i], v)
        for i, b in enumerate(rec["histogram"]):
            self.hist[i] = (self.hist[i] + b) & 0xFFFFFFFF
        self.dirty = True

    def row(self, wall_offset):
        args = [self.rank, self.first, self.last, self.count, self.index, self.ts, self.ts / 1e9 + wall_offset,
                struct.pack("<16I", *self.hist)]
        for i, c in enumerate(STEP_COLUMNS):
            one = self.count == 1
            args.append(_value(self.sum[i] / self.count, c in _INTEGRAL and one))
            args.append(None if one else _value(self.min[i], c in _INTEGRAL))
            args.append(None if one else _value(self.max[i], c in _INTEGRAL))
        return args


class Recorder:
    """Records one job (opened through ``reader``, a ``Reader``) into the run store from a
    daemon thread. ``finish(state)`` writes what the rings still hold and the final state."""

    POLL = 0.05
    COMMIT = 0.25

    def __init__(self, reader, job, total_steps=0, world=1, tp=1, dp=1, model=None, preset="python",
                 features=0, budget_mib=256, settings=None, directory=None, restart=False):
        self.reader, self.world, self.dp = reader, world, max(dp, 1)
        self.directory = directory or store_directory()
        self.failed = None
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise OSError(f"run store {self.directory} is not a directory")
        os.makedirs(self.directory, exist_ok=True)
        if not os.access(self.directory, os.W_OK):  # False on a read-only file system, also for root
            raise OSError(f"run store {self.directory} is not writable; set TPTOP_RUNS to a writable directory")
        self.name, note = run_name(self.directory, job, restart)
        if note:
            print(f"tptop_telemetry: {note}", file=sys.stderr)
        self.path = os.path.join(self.directory, self.name + SUFFIX)
        budget = budget_mib << 20
        self.bucket = bucket_steps(total_steps, world, budget)
        # CLOCK_REALTIME - CLOCK_MONOTONIC now: dates the rings' boot-clock timestamps, also
        # when the run is exported after a reboot (run.wall_minus_boot_ns)
        wall_minus_boot_ns = time.time_ns() - time.monotonic_ns()
        self.wall_offset = wall_minus_boot_ns / 1e9
        # a new run's first transaction goes to a temporary file renamed into place (as the
        # Swift RunFile does): no reader ever opens a half-created run
        fresh = not os.path.exists(self.path)
        target = f"{self.path}.creating-{os.getpid()}" if fresh else self.path
        if fresh:
            _remove_db_files(target)
        db = self._connect(target)
        db.execute("PRAGMA journal_mode = WAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"{self.path} has store schema {version}")
        db.execute("BEGIN")
        for sql in CREATION:
            db.execute(sql)
        for v in (range(version, SCHEMA_VERSION) if version else ()):
            for sql in MIGRATION.get(v, ()):
                db.execute(sql)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        now = time.time()
        existing = db.execute("SELECT incarnations FROM run WHERE id = 1").fetchone()
        if existing and (restart or self.name != job):
            db.execute("UPDATE run SET job = ?, state = 'running', ended = NULL, updated = ?, incarnations = ?, "
                       "recorder_pid = ?, wall_minus_boot_ns = COALESCE(wall_minus_boot_ns, ?) WHERE id = 1",
                       (job, now, existing[0] + 1, os.getpid(), wall_minus_boot_ns))
        else:
            m = model or {}
            db.execute(
                "INSERT INTO run (id, name, job, writer, state, started, updated, incarnations, world, tp, dp, "
                "total_steps, preset, layers, heads, channels, vocab, padded_vocab, max_seq, batch, seq, features, "
                "command_line, hosts, recorder_pid, budget_bytes, bucket_steps, wall_minus_boot_ns) "
                "VALUES (1, ?, ?, 'python', 'starting', ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?)",
                (self.name, job, now, now, world, tp, dp, total_steps, preset, m.get("layers"), m.get("heads"),
                 m.get("channels"), m.get("vocab"), m.get("padded_vocab", m.get("vocab")), m.get("max_seq"),
                 m.get("batch"), m.get("seq"), features, " ".join(sys.argv), os.getpid(), budget, self.bucket,
                 wall_minus_boot_ns))
        shards = (getattr(reader, "info", None) or {}).get("shards") or []
        if shards:
            db.execute("DELETE FROM tensors")
            db.executemany(
                "INSERT INTO tensors (tensor, name, shape, split, split_dim, ranges, descriptions) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(i, t["name"], _json(list(t["shape"])), t["split"], t["split_dim"],
                  _json([[list(r) for r in part] for part in t["ranks"]]), _json(list(t["descriptions"])))
                 for i, t in enumerate(shards)])
        for k, v in (settings or {}).items():
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (str(k), str(v)))
        db.execute("COMMIT")
        if fresh:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
            os.rename(target, self.path)
            _remove_db_files(target)
            db = self._connect(self.path)
        self.db = db
        self.pending, self.buckets = {}, {}
        self.series, self.ranks_rows, self.events, self.stats, self.lost = [], [], [], [], 0
        self.last_step, self.final_loss, self.best_loss = 0, None, None
        self._stop = threading.Event()
        self._final_state = None
        self._thread = threading.Thread(target=self._loop, name="tptop-recorder", daemon=True)
        self._thread.start()

    @staticmethod
    def _connect(path):
        db = sqlite3.connect(path, timeout=5, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    # accumulation (as RunAccumulator)

    def _add_step(self, r, now):
        p = self.pending.get(r["step"])
        if p is None:
            p = self.pending[r["step"]] = dict(ranks=0, first=r, max_step=0, comm=0.0, total=0.0, mem=[0] * 5,
                                               ts=0, arrived=now)
        if p["ranks"] == 0 or r["rank"] == 0:
            p["first"] = r
        p["ranks"] += 1
        p["max_step"] = max(p["max_step"], r["step_ns"])
        p["comm"] += r["comm_ns"]
        p["total"] += max(r["allreduce_total_ns"], r["comm_ns"])
        for i, k in enumerate(("rss_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes")):
            p["mem"][i] = max(p["mem"][i], r[k])
        p["ts"] = max(p["ts"], r["timestamp_ns"])
        if p["ranks"] >= self.world:
            self._emit(r["step"], self.pending.pop(r["step"]))
        start = (max(r["step"], 1) - 1) // self.bucket * self.bucket + 1
        b = self.buckets.get(r["rank"])
        if b is not None and b.first == start:
            b.add(r)
        else:
            if b is not None:
                self.ranks_rows.append(b.row(self.wall_offset))
            self.buckets[r["rank"]] = _Bucket(r, start)

    def _emit(self, step, p):
        f, n = p["first"], max(p["ranks"], 1)
        tokens = f["tokens"] * self.dp
        secs = p["max_step"] / 1e9
        values = [f["loss"], f["lr"], f["grad_norm"], tokens, tokens / secs if secs > 0 else 0, p["max_step"],
                  p["comm"] / n, p["total"] / n] + p["mem"]
        ints = {"tokens", "step_ns", "rss_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes"}
        self.series.append([step, p["ts"], p["ts"] / 1e9 + self.wall_offset, p["ranks"]]
                           + [_value(v, c in ints) for c, v in zip(SERIES_COLUMNS, values)])
        loss = f["loss"]
        if step >= self.last_step:
            self.last_step, self.final_loss = step, loss
        if loss == loss and abs(loss) != float("inf") and (self.best_loss is None or loss < self.best_loss):
            self.best_loss = loss

    def _poll(self):
        now = time.monotonic_ns()
        for rank in range(self.reader.geometry.world_size):
            records, lost, _ = self.reader.poll(rank)
            self.lost += lost
            for r in records:
                if r["type"] == "step":
                    self._add_step(r, now)
                elif r["type"] == "event":
                    self.events.append((r["rank"], r["index"], r["step"], r["timestamp_ns"],
                                        r["timestamp_ns"] / 1e9 + self.wall_offset, r["kind"], r["text"]))
                else:
                    for k, (w, g, u) in enumerate(r["entries"]):
                        self.stats.append((r["rank"], r["step"], r["first_tensor"] + k, r["index"], r["timestamp_ns"],
                                           _value(w, False), _value(g, False), _value(u, False)))

    def _state(self):
        states = [self.reader.rank_status(r) for r in range(self.reader.geometry.world_size)]
        attached = [s for s in states if s["attached"]]
        if any(s["state"] == "failed" for s in attached):
            return "failed"
        if attached and all(s["state"] == "finished" for s in attached):
            return "finished"
        if any(s["state"] == "paused" for s in attached):
            return "paused"
        return "running" if attached else "starting"

    def _commit(self, final):
        now = time.monotonic_ns()
        for step in sorted(self.pending):
            if final or now - self.pending[step]["arrived"] > 2_000_000_000:
                self._emit(step, self.pending.pop(step))
        for b in self.buckets.values():
            if b.dirty:
                self.ranks_rows.append(b.row(self.wall_offset))
                b.dirty = False
        hosts = []
        for r in range(self.reader.geometry.world_size):
            s = self.reader.rank_status(r)
            if s["attached"] and s["host"] and s["host"] not in hosts:
                hosts.append(s["host"])
        state = self._final_state if final and self._final_state else self._state()
        db = self.db
        db.execute("BEGIN")
        db.executemany(f"INSERT OR REPLACE INTO series VALUES ({', '.join('?' * (4 + len(SERIES_COLUMNS)))})", self.series)
        cols = ["rank", "step", "last_step", "steps", "ring_index", "timestamp_ns", "wall_time", "allreduce_hist"] + _RANK_COLUMNS
        db.executemany(f"INSERT OR REPLACE INTO rank_steps ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       self.ranks_rows)
        db.executemany("INSERT INTO events (rank, ring_index, step, timestamp_ns, wall_time, kind, text) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", self.events)
        db.executemany("INSERT OR REPLACE INTO shard_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self.stats)
        best = None if self.best_loss is None else float(self.best_loss)
        db.execute(
            "UPDATE run SET state = ?, updated = ?, last_step = MAX(last_step, ?), final_loss = COALESCE(?, final_loss), "
            "best_loss = CASE WHEN ? IS NULL THEN best_loss WHEN best_loss IS NULL OR ? < best_loss THEN ? ELSE best_loss END, "
            "records_lost = records_lost + ?, hosts = ?, ended = COALESCE(?, ended) WHERE id = 1",
            (state, time.time(), self.last_step, _value(self.final_loss, False), best, best, best, self.lost,
             ",".join(hosts), time.time() if final else None))
        db.execute("COMMIT")
        if self.lost:
            print(f"tptop_telemetry: warning: run store: {self.lost} records of run '{self.name}' were overwritten "
                  "in the rings before they were recorded", file=sys.stderr)
        self.series, self.ranks_rows, self.events, self.stats, self.lost = [], [], [], [], 0

    def _loop(self):
        last = time.monotonic()
        try:
            while not self._stop.wait(self.POLL):
                self._poll()
                if time.monotonic() - last >= self.COMMIT:
                    self._commit(False)
                    last = time.monotonic()
            self._poll()
            self._commit(True)
        except (sqlite3.Error, OSError) as e:
            self.failed = str(e)
            print(f"tptop_telemetry: warning: run store {self.path}: {e}; recording stopped, the job goes on",
                  file=sys.stderr)
            try:
                self.db.rollback()
            except sqlite3.Error:
                pass

    def finish(self, state=None, timeout=10.0):
        """Stops recording after writing what the rings hold; ``state`` (finished, failed,
        stopped) is the run's final state (default: what the rank headers say)."""
        self._final_state = state
        self._stop.set()
        self._thread.join(timeout)
        try:
            self.db.close()
        except sqlite3.Error:
            pass


def start_recorder(job, reader_factory, **kw):
    """A Recorder for ``job``, or None (with one warning line) when recording is off
    (``TPTOP_NO_RECORD=1``) or the store cannot be opened."""
    if os.environ.get("TPTOP_NO_RECORD", "") not in ("", "0"):
        return None
    try:
        return Recorder(reader_factory(), job, **kw)
    except (sqlite3.Error, OSError) as e:
        print(f"tptop_telemetry: warning: {e}; this run is not recorded, the job goes on", file=sys.stderr)
        return None

"""Creating and opening a job's segment, /dev/shm/tptop.<job> (docs/TELEMETRY.md, Lifetime).

A segment is a POSIX shared-memory object; on Linux ``shm_open("/tptop.x")`` is the file
/dev/shm/tptop.x, so plain ``os.open`` and ``mmap`` reach the very object the Swift code maps.
"""

import errno
import mmap
import os
import platform
import re
import struct
import sys
import time

from . import layout as L
from .errors import JobNameTaken, TelemetryError
from .layout import Header as H, Shard as S, Control as C, Geometry

SHM_DIR = "/dev/shm"
PREFIX = "tptop."
_NAME = re.compile(r"[A-Za-z0-9._-]{1,63}")
# Machines whose plain stores become visible to other cores in program order (total store
# order). The seqlock writer relies on it: Python has no fences, so the order of its stores
# (seq odd, payload, seq even, write index) must be the order other processes see them in.
TSO_MACHINES = ("x86_64", "amd64")


def check_platform(machine=None):
    """Raises ``TelemetryError`` unless this is little-endian x86-64 Linux (see TSO_MACHINES)."""
    m = (machine or platform.machine()).lower()
    if m not in TSO_MACHINES or sys.byteorder != "little":
        raise TelemetryError(
            f"tptop_telemetry writes the segment with plain stores and needs x86-64 store ordering; "
            f"this machine is {m or 'unknown'}: run the job on x86-64 or use tptrain")
    if not os.path.isdir(SHM_DIR):
        raise TelemetryError(f"{SHM_DIR} is missing: tptop telemetry needs Linux POSIX shared memory")


def is_valid_name(job):
    """Whether ``job`` is a valid job name: 1–63 characters from A-Z a-z 0-9 . _ -, not . or .."""
    return isinstance(job, str) and bool(_NAME.fullmatch(job)) and job not in (".", "..")


def default_job_name():
    """A job name from the time and pid, e.g. job-20261128-220501-4242 (as tptrain chooses)."""
    return time.strftime("job-%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid()}"


def path_of(job):
    """/dev/shm/tptop.<job>, after checking the name."""
    if not is_valid_name(job):
        raise TelemetryError(f"invalid job name '{job}': use 1–63 characters from A-Z a-z 0-9 . _ -")
    return os.path.join(SHM_DIR, PREFIX + job)


def put_text(mm, off, text, capacity):
    """Stores UTF-8 ``text`` cut at a character boundary, NUL padded to ``capacity``."""
    from .records import fit_utf8
    mm[off:off + capacity] = fit_utf8(text, capacity).ljust(capacity, b"\0")


def get_text(mm, off, capacity):
    return bytes(mm[off:off + capacity]).split(b"\0", 1)[0].decode("utf-8", "replace")


class Mapping:
    """A mapped segment: the mmap and a u64 view of it for single-word loads and stores.

    Word access goes through ``memoryview.cast('Q')``, whose item get/set is one 8-byte memcpy
    that compilers emit as one aligned load or store, so a reader never sees half a word.
    """

    def __init__(self, job, fd, size, writable):
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        self.job = job
        self.size = size
        self.mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)
        self.words = memoryview(self.mm).cast("Q")

    def u64(self, off):
        return self.words[off >> 3]

    def set_u64(self, off, v):
        self.words[off >> 3] = v & 0xFFFFFFFFFFFFFFFF

    def u32(self, off):
        return struct.unpack_from("<I", self.mm, off)[0]

    def i32(self, off):
        return struct.unpack_from("<i", self.mm, off)[0]

    def i64(self, off):
        return struct.unpack_from("<q", self.mm, off)[0]

    def set(self, off, fmt, v):
        struct.pack_into("<" + fmt, self.mm, off, v)

    def close(self):
        if self.mm is None:
            return
        self.words.release()
        self.mm.close()
        self.mm = None


def _retry(call):
    while True:
        try:
            return call()
        except InterruptedError:
            continue


def create_mapping(job, size):
    """Creates the object exclusively (0600), reserves its pages (ENOSPC now, not SIGBUS later)
    and maps it."""
    path = path_of(job)
    try:
        fd = _retry(lambda: os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise JobNameTaken(
            f"segment /dev/shm/tptop.{job} already exists; choose another job name or run `tptop gc`") from None
    except OSError as e:
        raise TelemetryError(f"shm_open failed for job '{job}': {os.strerror(e.errno)}") from None
    try:
        try:
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            os.unlink(path)
            if e.errno == errno.ENOSPC:
                raise TelemetryError(
                    f"no space in /dev/shm for job '{job}' ({size} bytes needed); free /dev/shm "
                    f"(tptop gc) or use fewer ring slots") from None
            raise TelemetryError(f"posix_fallocate failed for job '{job}': {os.strerror(e.errno)}") from None
        return Mapping(job, fd, size, writable=True)
    finally:
        os.close(fd)


def open_mapping(job, writable=True):
    """Opens and maps an existing object."""
    path = path_of(job)
    try:
        fd = _retry(lambda: os.open(path, os.O_RDWR if writable else os.O_RDONLY))
    except FileNotFoundError:
        raise TelemetryError(
            f"no job '{job}' on this machine (no /dev/shm/tptop.{job}); run `tptop ls` to see the jobs") from None
    except PermissionError:
        try:
            owner = os.stat(path).st_uid
        except OSError:
            owner = 0xFFFFFFFF
        raise TelemetryError(
            f"job '{job}' belongs to uid {owner}, not to you (uid {os.geteuid()}); run it as that user") from None
    except OSError as e:
        raise TelemetryError(f"shm_open failed for job '{job}': {os.strerror(e.errno)}") from None
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise TelemetryError(f"job '{job}' is still creating its segment (not ready); retry in a moment")
        if size < H.SIZE:
            raise TelemetryError(
                f"segment of job '{job}' is truncated ({size} bytes, header needs {H.SIZE}); "
                f"remove it with `tptop gc` or rm")
        return Mapping(job, fd, size, writable)
    finally:
        os.close(fd)


def validate(m, job, check_owner=True):
    """Checks everything the Swift reader checks (``ValidatedHeader.validate``), in its order,
    and returns the geometry and the job's description as a dict."""
    magic = m.u64(H.MAGIC)
    if magic == 0:
        raise TelemetryError(f"job '{job}' is still creating its segment (not ready); retry in a moment")
    if magic != L.MAGIC:
        raise TelemetryError(
            f"/dev/shm/tptop.{job} is not a tptop telemetry segment (wrong magic); remove it with rm if it is stale")
    major = m.u32(H.VERSION_MAJOR)
    if major != L.VERSION_MAJOR:
        raise TelemetryError(
            f"job '{job}' uses telemetry major version {major}, this library writes version "
            f"{L.VERSION_MAJOR}; use the tptop_telemetry that matches that tptop")
    if m.u64(H.READY) != L.READY_VALUE:
        raise TelemetryError(f"job '{job}' is still creating its segment (not ready); retry in a moment")
    claimed = m.u64(H.TOTAL_SIZE)
    if claimed > m.size:
        raise TelemetryError(
            f"segment of job '{job}' is truncated ({m.size} bytes, header needs {claimed}); "
            f"remove it with `tptop gc` or rm")
    owner = m.u32(H.OWNER_UID)
    if check_owner and owner != os.geteuid():
        raise TelemetryError(
            f"job '{job}' belongs to uid {owner}, not to you (uid {os.geteuid()}); run it as that user")

    def corrupt(detail):
        return TelemetryError(f"segment of job '{job}' is corrupt ({detail}); remove it with rm /dev/shm/tptop.{job}")

    world, tp, dp = m.u32(H.WORLD_SIZE), m.u32(H.TP), m.u32(H.DP)
    shard_count, slots = m.u32(H.SHARD_COUNT), m.u64(H.SLOT_COUNT)
    problem = Geometry.problem(world, tp, shard_count, slots)
    if problem:
        raise corrupt(problem)
    if dp < 1 or tp * dp != world:
        raise corrupt(f"t {tp} × d {dp} ≠ world size {world}")
    g = Geometry(world, tp, shard_count, slots)
    for what, (off, want) in g.header_words().items():
        if m.u64(off) != want:
            raise corrupt(f"{what} {m.u64(off)}, expected {want}")
    if m.u32(H.SHARD_ENTRY_SIZE) != g.shard_entry_size:
        raise corrupt("shard entry size")
    if g.total_size > m.size:
        raise TelemetryError(
            f"segment of job '{job}' is truncated ({m.size} bytes, header needs {g.total_size}); "
            f"remove it with `tptop gc` or rm")
    info = dict(
        name=get_text(m.mm, H.JOB_NAME, H.JOB_NAME_CAPACITY), world_size=world, tp=tp, dp=dp,
        total_steps=m.u64(H.TOTAL_STEPS), slot_count=slots, owner_uid=owner,
        creator_pid=m.u32(H.CREATOR_PID), incarnation=m.u64(H.INCARNATION),
        creation_time=m.u64(H.CREATION_TIME_NS) / 1e9, version_minor=m.u32(H.VERSION_MINOR),
        features=m.u64(H.FEATURES) if m.u32(H.VERSION_MINOR) >= 3 else 0,
        model=dict(layers=m.u32(H.MODEL_LAYERS), heads=m.u32(H.MODEL_HEADS),
                   channels=m.u32(H.MODEL_CHANNELS), vocab=m.u32(H.MODEL_VOCAB),
                   padded_vocab=m.u32(H.MODEL_PADDED_VOCAB), max_seq=m.u32(H.MODEL_MAX_SEQ),
                   batch=m.u32(H.MODEL_BATCH), seq=m.u32(H.MODEL_SEQ),
                   preset=get_text(m.mm, H.PRESET_NAME, H.PRESET_NAME_CAPACITY)),
        shards=[read_shard(m, g.job_description_offset + i * g.shard_entry_size, tp, corrupt)
                for i in range(shard_count)])
    return g, info


def read_shard(m, off, tp, corrupt):
    """One job-description entry as a dict (the form ``write_shard`` takes)."""
    ndim = m.u32(off + S.DIMENSION_COUNT)
    if not 1 <= ndim <= S.MAX_DIMENSIONS:
        raise corrupt(f"shard entry at {off}: {ndim} dimensions")
    split = m.i32(off + S.SPLIT)
    names = {v: k for k, v in L.SPLIT_KINDS.items()}
    if split not in names:
        raise corrupt(f"shard entry at {off}: split kind")
    sd = m.i32(off + S.SPLIT_DIM)
    if not -1 <= sd < ndim or m.u32(off + S.RANK_COUNT) != tp:
        raise corrupt(f"shard entry at {off}: split dimension or rank count")
    ranks, descriptions = [], []
    for r in range(tp):
        p = off + S.HEADER_SIZE + r * S.RANK_PART_SIZE
        n = m.u32(p + S.RANGE_COUNT)
        if n > S.MAX_RANGES:
            raise corrupt(f"shard entry at {off}: {n} ranges")
        ranks.append([(m.i64(p + S.RANGES + 16 * k), m.i64(p + S.RANGES + 16 * k + 8)) for k in range(n)])
        descriptions.append(get_text(m.mm, p + S.DESCRIPTION, S.DESCRIPTION_CAPACITY))
    return dict(name=get_text(m.mm, off + S.NAME, S.NAME_CAPACITY),
                shape=[m.i64(off + S.SHAPE + 8 * k) for k in range(ndim)], split=names[split],
                split_dim=None if sd < 0 else sd, ranks=ranks, descriptions=descriptions)


def check_shard(s, tp):
    """Raises ``TelemetryError`` for a shard the Swift reader would refuse."""
    def bad(why):
        return TelemetryError(f"invalid argument: shard '{s.get('name', '?')}': {why}")
    shape = list(s["shape"])
    if not 1 <= len(shape) <= S.MAX_DIMENSIONS:
        raise bad(f"{len(shape)} dimensions (1...4)")
    if not all(0 <= v <= 0x7FFFFFFF for v in shape):
        raise bad("dimension out of range")
    if s.get("split", "replicated") not in L.SPLIT_KINDS:
        raise bad(f"split '{s.get('split')}' (one of {', '.join(L.SPLIT_KINDS)})")
    sd = s.get("split_dim")
    if sd is not None and not 0 <= sd < len(shape):
        raise bad(f"split dimension {sd}")
    ranks = s.get("ranks") or [[] for _ in range(tp)]
    if len(ranks) != tp:
        raise bad(f"{len(ranks)} rank parts, expected t = {tp}")
    desc = s.get("descriptions") or []
    if desc and len(desc) != tp:
        raise bad(f"{len(desc)} descriptions")
    for rs in ranks:
        if len(rs) > S.MAX_RANGES:
            raise bad(f"{len(rs)} ranges (at most 4)")
        if not all(0 <= a and max(a, b) <= 0x7FFFFFFF for a, b in rs):
            raise bad("range out of bounds")


def write_shard(m, off, s, tp):
    """Writes one job-description entry (``s`` as ``check_shard`` accepted it)."""
    put_text(m.mm, off + S.NAME, s["name"], S.NAME_CAPACITY)
    shape = list(s["shape"])
    m.set(off + S.DIMENSION_COUNT, "I", len(shape))
    m.set(off + S.SPLIT, "i", L.SPLIT_KINDS[s.get("split", "replicated")])
    sd = s.get("split_dim")
    m.set(off + S.SPLIT_DIM, "i", -1 if sd is None else sd)
    m.set(off + S.RANK_COUNT, "I", tp)
    for k, v in enumerate(shape):
        m.set(off + S.SHAPE + 8 * k, "q", v)
    ranks = s.get("ranks") or [[] for _ in range(tp)]
    desc = s.get("descriptions") or [""] * tp
    for r, rs in enumerate(ranks):
        p = off + S.HEADER_SIZE + r * S.RANK_PART_SIZE
        m.set(p + S.RANGE_COUNT, "I", len(rs))
        for k, (a, b) in enumerate(rs):
            m.set(p + S.RANGES + 16 * k, "q", a)
            m.set(p + S.RANGES + 16 * k + 8, "q", max(a, b))
        put_text(m.mm, p + S.DESCRIPTION, desc[r], S.DESCRIPTION_CAPACITY)

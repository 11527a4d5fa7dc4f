"""The telemetry segment layout, version 1 (docs/TELEMETRY.md).

This is the Python copy of Sources/Telemetry/Layout.swift (``SegmentLayout``): the same names in
snake case, the same values. ``python/tests/test_layout.py`` parses the Swift file and fails when
the two disagree, so a change to the format has to be made in both places.
"""

MAGIC = 0x474553504F545054  # "TPTOPSEG" read as a little-endian u64
VERSION_MAJOR = 1  # readers refuse any other
VERSION_MINOR = 3  # minor versions only append fields
READY_VALUE = 0x0000215944414552  # "READY!\0\0", written last
PAGE_SIZE = 4096
DEFAULT_SLOT_COUNT = 4096

# Limits the Swift reader enforces (SegmentGeometry).
MAX_WORLD_SIZE = 4096
MAX_SLOT_COUNT = 1 << 20
MIN_SLOT_COUNT = 16
MAX_SHARD_COUNT = 1024


class Header:
    """Header page field offsets (grouped as the table in docs/TELEMETRY.md draws them)."""
    SIZE = 4096
    MAGIC = 0  # u64
    VERSION_MAJOR, VERSION_MINOR = 8, 12  # u32 each
    TOTAL_SIZE, HEADER_SIZE = 16, 24  # u64: bytes of the segment, 4096
    JOB_DESCRIPTION_OFFSET, JOB_DESCRIPTION_SIZE = 32, 40  # u64 each
    CONTROL_OFFSET, CONTROL_SIZE = 48, 56  # u64; the size is 4096
    RANK_HEADERS_OFFSET, RANK_HEADER_STRIDE = 64, 72  # u64; the stride is 256
    RINGS_OFFSET, RING_STRIDE = 80, 88  # u64; stride = slot count * slot size
    SLOT_COUNT, SLOT_SIZE = 96, 104  # u64: a power of two, 256
    CREATION_TIME_NS, INCARNATION = 112, 120  # u64: CLOCK_REALTIME ns, random nonce
    OWNER_UID, WORLD_SIZE, TP, DP = 128, 132, 136, 140  # u32 each
    TOTAL_STEPS = 144  # u64
    # model, u32 each
    MODEL_LAYERS, MODEL_HEADS, MODEL_CHANNELS, MODEL_VOCAB = 152, 156, 160, 164
    MODEL_PADDED_VOCAB, MODEL_MAX_SEQ, MODEL_BATCH, MODEL_SEQ = 168, 172, 176, 180
    SHARD_COUNT, SHARD_ENTRY_SIZE, CREATOR_PID = 184, 188, 192  # u32; entry size = 128 + 128 * tp
    JOB_NAME, JOB_NAME_CAPACITY = 200, 64  # UTF-8, NUL padded
    PRESET_NAME, PRESET_NAME_CAPACITY = 264, 32
    FEATURES = 296  # u64: bit 0 SP, bit 1 distributed optimizer, bits 2-3 recompute (0 none, 1 selective, 2 full)
    READY = 512  # u64, written last


class Shard:
    """Job-description entries: a 128-byte tensor header, then ``tp`` 128-byte rank parts."""
    HEADER_SIZE = 128
    NAME = 0
    NAME_CAPACITY = 48
    DIMENSION_COUNT = 48  # u32, 1...4
    SPLIT = 52  # i32: 0 replicated, 1 column, 2 row, 3 vocab
    SPLIT_DIM = 56  # i32, -1 when replicated
    RANK_COUNT = 60  # u32, = tp
    SHAPE = 64  # 4 x i64
    MAX_DIMENSIONS = 4
    RANK_PART_SIZE = 128
    RANGE_COUNT = 0  # u32, 0...4
    RANGES = 8  # 4 x (i64 start, i64 end exclusive)
    MAX_RANGES = 4
    DESCRIPTION = 72
    DESCRIPTION_CAPACITY = 56

    @staticmethod
    def entry_size(tp):
        return Shard.HEADER_SIZE + Shard.RANK_PART_SIZE * tp


class Control:
    """Control page: written by readers (tptop), read by world rank 0."""
    SIZE = 4096
    DESIRED_STATE = 0  # u64, changed only by compare-and-swap
    CHECKPOINT_REQUESTS = 64  # u64, incremented by readers
    OBSERVED_DESIRED_STATE = 128  # u64, what rank 0 last read
    OBSERVED_CHECKPOINT_REQUESTS = 136  # u64
    WRITES = 192  # u64, diagnostics
    PAUSED_WAKE = 256  # u32, the job's own: the node leader's wake word for paused ranks (futex)
    PAUSED_SIGNAL = 320  # u32, the job's own: a sleeping paused rank's stop signal, for its leader


class RankHeader:
    """Per-rank header, 256 bytes per world rank, written only by that rank."""
    STRIDE = 256
    WRITE_INDEX, HEARTBEAT_NS, STATE, LAST_STEP = 0, 8, 16, 24  # u64: head, CLOCK_MONOTONIC ns, state, step
    ACKED_DESIRED_STATE, ACKED_STEP = 32, 40  # u64: what this rank applied, and at which step
    CHECKPOINTS_SAVED, LAST_CHECKPOINT_STEP = 48, 56  # u64
    PID, WORLD_RANK, LOCAL_RANK, ATTACHED = 64, 68, 72, 76  # u32 each
    HOST, HOST_CAPACITY = 80, 48
    ATTACHED_VALUE = 0x52544141  # "AATR"
    # u64: the collective the rank waits in (kind | ordinal << 8 | step << 32; this writer
    # leaves it 0) and since when (CLOCK_MONOTONIC ns)
    WAITING_IN, WAIT_SINCE_NS = 128, 136
    # minor version 3: the rank's node (u32) and, for a rank of another node whose header world
    # rank 0's process keeps from forwarded messages, FORWARDED_FLAG in FLAGS (u32), the records
    # it published and forwarded (u64 each) and the forwarder's pid (u32); this writer runs on
    # one node and leaves them 0
    NODE_INDEX, FLAGS, SOURCE_RECORDS, FORWARDED_RECORDS, FORWARDER_PID = 144, 148, 152, 160, 168
    FORWARDED_FLAG = 1
    # the accelerator, written by the rank each step (0: none or unknown): torch.cuda's
    # allocated, reserved and peak allocated bytes (u64) and utilisation percent + 1 (u32)
    DEVICE_MEMORY_ALLOCATED, DEVICE_MEMORY_RESERVED, DEVICE_MEMORY_PEAK, DEVICE_UTILIZATION = 176, 184, 192, 200


class Slot:
    """A ring slot: a seqlock word and a 248-byte payload ending in a checksum."""
    SIZE = 256
    SEQ = 0
    PAYLOAD = 8
    PAYLOAD_SIZE = 248
    KIND = 8  # u32
    EVENT_KIND = 12  # u32
    STEP = 16  # i64
    TIMESTAMP_NS = 24  # u64
    CHECKSUM = 248  # u64 over bytes 8..<248

    KIND_STEP = 1
    KIND_EVENT = 2
    KIND_TENSOR_STATS = 3

    # step record
    COMM_PEER_WAIT_MICROS = 12  # u32 (minor 3): of comm_ns, µs waiting for a slower peer
    TOKENS = 32  # i64
    LOSS = 40  # f32
    LR = 44
    GRAD_NORM = 48
    COMPUTE_BUSY = 52
    GFLOPS = 56
    RANK = 60  # u32
    STEP_NS = 64  # u64
    FORWARD_NS = 72
    BACKWARD_NS = 80
    OPTIMIZER_NS = 88
    COMM_NS = 96
    DATA_NS = 104
    ALL_REDUCE_COUNT = 112  # i64
    ALL_REDUCE_BYTES = 120
    ALL_REDUCE_TOTAL_NS = 128
    ALL_REDUCE_MAX_NS = 136
    RSS_BYTES = 144
    PARAM_BYTES = 152
    GRAD_BYTES = 160
    OPTIMIZER_BYTES = 168
    ACTIVATION_BYTES = 176
    HISTOGRAM = 184  # 16 x u32

    # event record
    TEXT_LENGTH = 32  # u32
    EVENT_RANK = 36  # u32
    TEXT = 40
    TEXT_CAPACITY = 208

    # tensor-statistics record
    STATS_RANK = 32  # u32
    STATS_FIRST_TENSOR = 36  # u32
    STATS_ENTRIES = 40  # 3 x f32 per entry
    STATS_CAPACITY = 17


# Enumerations (Sources/JobSchema/States.swift; event kinds in Sources/Telemetry/JobTypes.swift).
RANK_STATES = ("starting", "running", "paused", "checkpointing", "finished", "failed")
DESIRED_STATES = ("run", "pause", "stop")
EVENT_KINDS = {"checkpoint_saved": 1, "paused": 2, "resumed": 3, "stopped": 4,
               "nonfinite_loss": 5, "error": 6}
SPLIT_KINDS = {"replicated": 0, "column": 1, "row": 2, "vocab": 3}
HISTOGRAM_BUCKETS = 16


def round_up(n):
    """``n`` rounded up to a whole page."""
    return (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


class Geometry:
    """Where every area lies (the Swift ``SegmentGeometry``)."""

    def __init__(self, world_size, tp, shard_count, slot_count):
        self.world_size = world_size
        self.tp = tp
        self.shard_count = shard_count
        self.slot_count = slot_count
        self.shard_entry_size = Shard.entry_size(tp)
        self.job_description_offset = Header.SIZE
        self.job_description_size = max(round_up(shard_count * self.shard_entry_size), PAGE_SIZE)
        self.control_offset = self.job_description_offset + self.job_description_size
        self.rank_headers_offset = self.control_offset + Control.SIZE
        self.rank_headers_size = round_up(world_size * RankHeader.STRIDE)
        self.rings_offset = self.rank_headers_offset + self.rank_headers_size
        self.ring_stride = slot_count * Slot.SIZE
        self.total_size = self.rings_offset + world_size * self.ring_stride

    def header_words(self):
        """Every u64 size and offset field of the header by what it is: (offset, value).
        Creators write them; readers recompute them and refuse a header that differs."""
        return {
            "header size": (Header.HEADER_SIZE, Header.SIZE),
            "job-description offset": (Header.JOB_DESCRIPTION_OFFSET, self.job_description_offset),
            "job-description size": (Header.JOB_DESCRIPTION_SIZE, self.job_description_size),
            "control offset": (Header.CONTROL_OFFSET, self.control_offset),
            "control size": (Header.CONTROL_SIZE, Control.SIZE),
            "rank-header offset": (Header.RANK_HEADERS_OFFSET, self.rank_headers_offset),
            "rank-header stride": (Header.RANK_HEADER_STRIDE, RankHeader.STRIDE),
            "ring offset": (Header.RINGS_OFFSET, self.rings_offset),
            "ring stride": (Header.RING_STRIDE, self.ring_stride),
            "slot size": (Header.SLOT_SIZE, Slot.SIZE),
            "total size": (Header.TOTAL_SIZE, self.total_size),
        }

    def rank_header_offset(self, rank):
        return self.rank_headers_offset + rank * RankHeader.STRIDE

    def ring_offset(self, rank):
        return self.rings_offset + rank * self.ring_stride

    @staticmethod
    def problem(world_size, tp, shard_count, slot_count):
        """The first range problem, as text, or None."""
        if world_size < 1 or world_size > MAX_WORLD_SIZE:
            return f"world size {world_size} outside 1...{MAX_WORLD_SIZE}"
        if tp < 1 or tp > world_size:
            return f"tp {tp} outside 1...{world_size}"
        if shard_count < 0 or shard_count > MAX_SHARD_COUNT:
            return f"shard count {shard_count} outside 0...{MAX_SHARD_COUNT}"
        if slot_count < MIN_SLOT_COUNT or slot_count > MAX_SLOT_COUNT or slot_count & (slot_count - 1):
            return (f"ring slot count {slot_count} is not a power of two in "
                    f"{MIN_SLOT_COUNT}...{MAX_SLOT_COUNT}")
        return None


# The header's feature word (Header.FEATURES), as JobSchema's RunFeatures defines it.
FEATURE_SEQUENCE_PARALLEL = 1 << 0
FEATURE_DISTRIBUTED_OPTIMIZER = 1 << 1
FEATURE_RECOMPUTE_SHIFT = 2
RECOMPUTE_MODES = ("none", "selective", "full")
FEATURE_OVERLAP_GRAD_REDUCE = 1 << 4
FEATURE_OVERLAP_TP = 1 << 5
#: a stop request writes a checkpoint first
FEATURE_CHECKPOINT_AT_STOP = 1 << 6
#: the job applies no pause, resume, checkpoint or stop request (its loop never asks)
FEATURE_IGNORES_CONTROL = 1 << 7


def features(sequence_parallel=False, distributed_optimizer=False, recompute="none",
             overlap_grad_reduce=False, overlap_tp=False):
    """The header's feature word for a run's flags."""
    return ((FEATURE_SEQUENCE_PARALLEL if sequence_parallel else 0)
            | (FEATURE_DISTRIBUTED_OPTIMIZER if distributed_optimizer else 0)
            | RECOMPUTE_MODES.index(recompute) << FEATURE_RECOMPUTE_SHIFT
            | (FEATURE_OVERLAP_GRAD_REDUCE if overlap_grad_reduce else 0)
            | (FEATURE_OVERLAP_TP if overlap_tp else 0))

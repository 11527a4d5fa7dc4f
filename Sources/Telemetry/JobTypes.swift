// Plain value types shared by the writer and the readers. They mirror the engine's types
// (Telemetry does not depend on the engine).

/// The GPT model configuration and batch shape of a job.
public struct TelemetryModelInfo: Sendable, Equatable {
  /// Transformer blocks.
  public var layers: Int
  /// Attention heads.
  public var heads: Int
  /// Embedding width C.
  public var channels: Int
  /// Vocabulary size V.
  public var vocab: Int
  /// Vocabulary padded for sharding Vp.
  public var paddedVocab: Int
  /// Maximum sequence length (positional table rows).
  public var maxSeq: Int
  /// Micro-batch B per data-parallel replica.
  public var batch: Int
  /// Sequence length T used in training.
  public var seq: Int
  /// Preset name, e.g. "small" (at most 31 UTF-8 bytes are stored).
  public var preset: String

  public init(
    layers: Int, heads: Int, channels: Int, vocab: Int, paddedVocab: Int, maxSeq: Int,
    batch: Int, seq: Int, preset: String
  ) {
    self.layers = layers
    self.heads = heads
    self.channels = channels
    self.vocab = vocab
    self.paddedVocab = paddedVocab
    self.maxSeq = maxSeq
    self.batch = batch
    self.seq = seq
    self.preset = preset
  }
}

/// How a parameter tensor is divided among tensor-parallel ranks (same raw values as
/// `TPEngine.SplitKind`).
public enum TelemetrySplitKind: Int32, Sendable, CaseIterable {
  case replicated = 0, column = 1, row = 2, vocab = 3

  /// Lower-case name for display.
  public var name: String {
    switch self {
    case .replicated: return "replicated"
    case .column: return "column"
    case .row: return "row"
    case .vocab: return "vocab"
    }
  }
}

/// One parameter tensor's global shape and each TP rank's part of it.
public struct TelemetryShard: Sendable, Equatable {
  /// Tensor name (at most 47 UTF-8 bytes are stored), e.g. "qkvw".
  public var name: String
  /// Global shape, 1 to 4 dimensions.
  public var shape: [Int]
  /// How the tensor is split.
  public var split: TelemetrySplitKind
  /// Index into `shape` of the split dimension; nil when replicated.
  public var splitDim: Int?
  /// For each TP rank, its half-open ranges along `splitDim` (at most 4 per rank).
  public var ranks: [[Range<Int>]]
  /// For each TP rank, a human description (at most 55 UTF-8 bytes are stored).
  public var rankDescriptions: [String]

  public init(
    name: String, shape: [Int], split: TelemetrySplitKind, splitDim: Int?,
    ranks: [[Range<Int>]], rankDescriptions: [String]
  ) {
    self.name = name
    self.shape = shape
    self.split = split
    self.splitDim = splitDim
    self.ranks = ranks
    self.rankDescriptions = rankDescriptions
  }
}

/// Everything a creator publishes about a job, before the first step.
public struct JobDescription: Sendable, Equatable {
  /// Job name; the segment is /dev/shm/tptop.<name>.
  public var name: String
  public var model: TelemetryModelInfo
  /// Number of MPI ranks (= tp * dp).
  public var worldSize: Int
  /// Tensor-parallel degree.
  public var tp: Int
  /// Data-parallel degree.
  public var dp: Int
  /// Steps the job plans to run.
  public var totalSteps: Int
  /// Shard layout, every entry with exactly `tp` rank parts.
  public var shards: [TelemetryShard]

  public init(
    name: String, model: TelemetryModelInfo, worldSize: Int, tp: Int, dp: Int, totalSteps: Int,
    shards: [TelemetryShard]
  ) {
    self.name = name
    self.model = model
    self.worldSize = worldSize
    self.tp = tp
    self.dp = dp
    self.totalSteps = totalSteps
    self.shards = shards
  }
}

/// What a reader learns about a job from its header and job-description area.
public struct JobInfo: Sendable, Equatable {
  /// The published description (name, model, world, t, d, total steps, shards).
  public var description: JobDescription
  /// Creation time, seconds since the Unix epoch.
  public var creationTime: Double
  /// Random nonce chosen at creation: a different value means a different job of the same name.
  public var incarnation: UInt64
  /// Effective uid of the creator.
  public var ownerUID: UInt32
  /// Pid of the process that created the segment.
  public var creatorPid: Int32
  /// Ring slots per rank.
  public var slotCount: Int
  /// Segment size, bytes.
  public var segmentSize: Int
  /// Minor layout version.
  public var versionMinor: UInt32

  /// Job name (shorthands for the fields of `description` follow).
  public var name: String { description.name }
  /// The model configuration.
  public var model: TelemetryModelInfo { description.model }
  /// Number of ranks.
  public var worldSize: Int { description.worldSize }
  /// Tensor-parallel degree t.
  public var tp: Int { description.tp }
  /// Data-parallel degree d.
  public var dp: Int { description.dp }
  /// Steps the job plans to run.
  public var totalSteps: Int { description.totalSteps }
  /// Shard layout.
  public var shards: [TelemetryShard] { description.shards }
}

/// A rank's run state as it reports it (same raw values as `TPEngine.RunState`).
public enum RankState: UInt64, Sendable, CaseIterable {
  case starting = 0, running = 1, paused = 2, checkpointing = 3, finished = 4, failed = 5

  /// Lower-case name for display and export.
  public var name: String {
    switch self {
    case .starting: return "starting"
    case .running: return "running"
    case .paused: return "paused"
    case .checkpointing: return "checkpointing"
    case .finished: return "finished"
    case .failed: return "failed"
    }
  }
}

/// A job's state as a reader judges it.
public enum JobState: String, Sendable, CaseIterable {
  case starting, running, paused, checkpointing, finished, failed
  /// Heartbeat older than the stale limit and the process gone, without a finished mark.
  case stale
}

/// The control page's desired-state word (same raw values as `ControlDecision.Desired`).
public enum DesiredState: UInt64, Sendable, CaseIterable {
  case run = 0, pause = 1, stop = 2

  /// Lower-case name for display and export.
  public var name: String {
    switch self {
    case .run: return "run"
    case .pause: return "pause"
    case .stop: return "stop"
    }
  }
}

/// Kinds of event records.
public enum EventKind: UInt32, Sendable, CaseIterable {
  case checkpointSaved = 1, paused = 2, resumed = 3, stopped = 4, nonFiniteLoss = 5, error = 6

  /// Lower-case name for display and export.
  public var name: String {
    switch self {
    case .checkpointSaved: return "checkpoint_saved"
    case .paused: return "paused"
    case .resumed: return "resumed"
    case .stopped: return "stopped"
    case .nonFiniteLoss: return "nonfinite_loss"
    case .error: return "error"
    }
  }
}

/// A rank's header as a reader sees it.
public struct RankStatus: Sendable, Equatable {
  /// World rank.
  public var rank: Int
  /// Whether the rank has opened the segment (ranks on other hosts never do).
  public var attached: Bool
  /// Process id of the rank (0 before it attached).
  public var pid: Int32
  /// Host name of the rank.
  public var host: String
  /// Rank within its host.
  public var localRank: Int
  /// Seconds since the last heartbeat; nil before the first.
  public var heartbeatAge: Double?
  /// State as reported; nil when the word holds an unknown value.
  public var state: RankState?
  /// Records published so far (the ring's next write index).
  public var writeIndex: UInt64
  /// Last step finished.
  public var lastStep: Int
  /// Desired state this rank last applied, and the step at which it did.
  public var ackedState: DesiredState?
  /// Step at which `ackedState` was applied.
  public var ackedStep: Int
  /// Checkpoints this rank has saved, and the step of the last one.
  public var checkpointsSaved: Int
  /// Step of the last checkpoint.
  public var lastCheckpointStep: Int
  /// Whether `kill(pid, 0)` finds the process (false when not attached).
  public var pidAlive: Bool
  /// The collective the rank is blocked in, nil when it is not in one (or the segment predates
  /// minor version 2).
  public var waiting: CollectiveWait? = nil
}

/// The control page as a reader sees it.
public struct ControlStatus: Sendable, Equatable {
  /// Desired state requested by readers; nil when the word holds an unknown value.
  public var desired: DesiredState?
  /// Checkpoint requests so far.
  public var checkpointRequests: UInt64
  /// Desired state / checkpoint counter world rank 0 last read.
  public var observedDesired: DesiredState?
  /// Checkpoint counter world rank 0 last read.
  public var observedCheckpointRequests: UInt64
}

/// One line of `tptop ls`.
public struct JobSummary: Sendable, Equatable {
  /// Job name.
  public var name: String
  /// Judged state; nil when the segment could not be attached (see `problem`).
  public var state: JobState?
  /// Ranks, t and d (0 when the segment could not be attached).
  public var worldSize: Int
  /// Tensor-parallel degree.
  public var tp: Int
  /// Data-parallel degree.
  public var dp: Int
  /// Highest step any rank reported (0 before the first).
  public var step: Int
  /// Steps the job plans to run.
  public var totalSteps: Int
  /// Loss of the latest step record of world rank 0, if any is in the ring.
  public var loss: Float?
  /// Seconds since creation.
  public var age: Double
  /// The job is gone without a finished mark.
  public var stale: Bool
  /// The job finished before its planned last step: a stop request or a signal ended it.
  public var stoppedEarly: Bool = false
  /// The segment belongs to another user.
  public var foreign: Bool
  /// Why the segment could not be attached, one line; nil when it could.
  public var problem: String?
  /// The rank that holds the job up while the others wait for it, when there is one.
  public var stall: StallDiagnosis? = nil
}

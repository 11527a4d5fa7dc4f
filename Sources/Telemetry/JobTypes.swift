// Plain value types shared by the writer and the readers. The job's vocabulary (model shape,
// sharded tensors, run and desired state) is JobSchema's, shared with the engine and the
// dashboard.

import JobSchema

/// Everything a creator publishes about a job, before the first step.
public struct JobDescription: Sendable, Equatable {
  /// Job name; the segment is /dev/shm/tptop.<name>.
  public var name: String
  /// Model dimensions and batch shape.
  public var model: ModelShape
  /// Preset name, e.g. "small" (at most 31 UTF-8 bytes are stored).
  public var preset: String
  /// Number of MPI ranks (= tp * dp).
  public var worldSize: Int
  /// Tensor-parallel degree.
  public var tp: Int
  /// Data-parallel degree.
  public var dp: Int
  /// Steps the job plans to run.
  public var totalSteps: Int
  /// Shard layout, every entry with exactly `tp` rank parts.
  public var shards: [ShardedTensor]
  /// The run's memory-saving features (sequence parallelism, distributed optimizer,
  /// recomputation).
  public var features: RunFeatures

  public init(
    name: String, model: ModelShape, preset: String, worldSize: Int, tp: Int, dp: Int, totalSteps: Int,
    shards: [ShardedTensor], features: RunFeatures = RunFeatures()
  ) {
    self.features = features
    self.name = name
    self.model = model
    self.preset = preset
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
  public var model: ModelShape { description.model }
  /// The preset name.
  public var preset: String { description.preset }
  /// Number of ranks.
  public var worldSize: Int { description.worldSize }
  /// Tensor-parallel degree t.
  public var tp: Int { description.tp }
  /// Data-parallel degree d.
  public var dp: Int { description.dp }
  /// Steps the job plans to run.
  public var totalSteps: Int { description.totalSteps }
  /// Shard layout.
  public var shards: [ShardedTensor] { description.shards }
  /// The run's memory-saving features.
  public var features: RunFeatures { description.features }
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
  public var state: RunState?
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
  /// Index of the rank's node (0: world rank 0's node; 0 before minor version 3).
  public var node: Int = 0
  /// Whether this header and ring are kept by world rank 0's process from the rank's forwarded
  /// records (the rank runs on another node); `pidAlive` then tells whether that forwarder lives.
  public var forwarded: Bool = false
  /// For a forwarded rank: records it published on its own node (as of its last message).
  public var sourceRecords: UInt64 = 0
  /// For a forwarded rank: of those, the records it handed to MPI.
  public var forwardedRecords: UInt64 = 0
  /// The rank's accelerator, when its writer reports one.
  public var device: DeviceUsage? = nil

  /// Records the rank published that never reached this ring (dropped before sending, or still
  /// in flight): `sourceRecords - writeIndex` for a forwarded rank, 0 otherwise. Records lost
  /// to ring overrun are a reader's count (`RankPoll.lost`), not this.
  public var neverForwarded: UInt64 { forwarded && sourceRecords > writeIndex ? sourceRecords - writeIndex : 0 }
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
  /// Judged phase (`JobPhase.judge`); nil when the segment could not be attached (see
  /// `problem`).
  public var phase: JobPhase?
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
  /// The segment belongs to another user.
  public var foreign: Bool
  /// Why the segment could not be attached, one line; nil when it could.
  public var problem: String?
  /// The rank that holds the job up while the others wait for it, when the phase is stalled.
  public var stall: StallDiagnosis? = nil
  /// Nodes the job's attached ranks run on (1 for a single-node job).
  public var nodes: Int = 1
  /// Nodes whose ranks all stopped reporting (see `JobReader.lostNodes`).
  public var lostNodes: [Int] = []
}

extension JobSummary {
  /// The one word for the job's state that ls, the job picker and watch use: the phase's word
  /// (`JobPhase.Word`), or `unreadable` (`foreign`) for a segment that cannot be read.
  public var stateWord: String {
    if problem != nil { return foreign ? "foreign" : "unreadable" }
    return phase?.word.rawValue ?? "?"
  }

  /// For a failed job, the rank that failed first as far as the rank headers tell.
  public var failedRank: Int? { phase?.failedRank }

  /// Whether the job can be attached and has not ended.
  public var isLive: Bool { problem == nil && phase.map { !$0.isTerminal } ?? false }

  /// Whether this user can read the job (its segment is not another user's).
  public var isMine: Bool { !foreign }
}

/// A rank's accelerator (GPU) as its writer reports it in the rank header.
public struct DeviceUsage: Sendable, Equatable {
  /// torch.cuda's allocated, reserved and peak allocated bytes.
  public var allocatedBytes: UInt64
  public var reservedBytes: UInt64
  public var peakBytes: UInt64
  /// Utilisation 0…1 (NVML), nil when unknown.
  public var utilization: Double?

  /// Creates a reading.
  public init(allocatedBytes: UInt64, reservedBytes: UInt64, peakBytes: UInt64, utilization: Double?) {
    (self.allocatedBytes, self.reservedBytes, self.peakBytes, self.utilization) = (allocatedBytes, reservedBytes, peakBytes, utilization)
  }
}

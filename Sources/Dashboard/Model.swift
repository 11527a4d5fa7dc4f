// The dashboard's own picture of a job. Sources (the telemetry segment, a synthetic generator)
// translate into these types, so everything from history to rendering is independent of the
// segment's binary layout.

import Telemetry

/// Run state of one rank, as the rank reports it.
public enum RankRunState: Int, Sendable, CaseIterable {
  case starting, running, paused, checkpointing, finished, failed

  /// Lower-case label used in tables.
  public var label: String {
    switch self {
    case .starting: return "starting"
    case .running: return "running"
    case .paused: return "paused"
    case .checkpointing: return "ckpt"
    case .finished: return "finished"
    case .failed: return "failed"
    }
  }
}

/// What the controller asked the job to do.
public enum RunRequest: Int, Sendable {
  case run, pause, stop
}

/// How a parameter tensor is divided among tensor-parallel ranks.
public enum ShardSplit: Int, Sendable {
  case replicated, column, row, vocab

  /// Short label for tables.
  public var label: String {
    switch self {
    case .replicated: return "replicated"
    case .column: return "column"
    case .row: return "row"
    case .vocab: return "vocab"
    }
  }
}

/// One parameter tensor and each TP rank's part of it.
public struct ShardTensorInfo: Sendable, Equatable {
  /// Parameter name, e.g. "qkvw".
  public var name: String
  /// Global shape, e.g. [L, 3C, C].
  public var shape: [Int]
  /// Split kind.
  public var split: ShardSplit
  /// Index into `shape` of the split dimension; nil when replicated.
  public var splitDim: Int?
  /// Per TP rank: half-open ranges along `splitDim` (QKV has three ranges per rank).
  public var ranges: [[Range<Int>]]
  /// Per TP rank: a human description, e.g. "heads 0–2 of 6".
  public var descriptions: [String]
  /// Bytes per element (4 for fp32).
  public var elementBytes: Int

  /// Creates a tensor description.
  public init(name: String, shape: [Int], split: ShardSplit, splitDim: Int?,
              ranges: [[Range<Int>]], descriptions: [String], elementBytes: Int = 4) {
    self.name = name
    self.shape = shape
    self.split = split
    self.splitDim = splitDim
    self.ranges = ranges
    self.descriptions = descriptions
    self.elementBytes = elementBytes
  }

  /// Elements in the whole tensor.
  public var globalCount: Int { shape.reduce(1, *) }

  /// Elements held by TP rank `tp`.
  public func localCount(tp: Int) -> Int {
    guard let d = splitDim, d < shape.count, shape[d] > 0, tp < ranges.count else { return globalCount }
    let held = ranges[tp].reduce(0) { $0 + $1.count }
    return globalCount / shape[d] * held
  }

  /// Bytes held by TP rank `tp`.
  public func localBytes(tp: Int) -> Int { localCount(tp: tp) * elementBytes }
}

/// Static description of a job: what it trains and how it is split.
public struct JobSpec: Sendable, Equatable {
  /// Job (segment) name.
  public var name: String
  /// Model summary, e.g. "small (L6 H6 C384, 10.7M params)".
  public var model: String
  /// Tensor-parallel degree.
  public var tp: Int
  /// Data-parallel degree.
  public var dp: Int
  /// Steps the job will run.
  public var totalSteps: Int
  /// Parameter tensors in model order.
  public var tensors: [ShardTensorInfo]
  /// Path of the job's stdout/stderr log, when known.
  public var logPath: String?

  /// Creates a job description.
  public init(name: String, model: String, tp: Int, dp: Int, totalSteps: Int,
              tensors: [ShardTensorInfo], logPath: String? = nil) {
    self.name = name
    self.model = model
    self.tp = max(1, tp)
    self.dp = max(1, dp)
    self.totalSteps = totalSteps
    self.tensors = tensors
    self.logPath = logPath
  }

  /// World size t × d.
  public var worldSize: Int { tp * dp }

  /// (tp, dp) coordinates of a world rank: TP ranks are adjacent (Megatron order).
  public func coordinates(ofRank r: Int) -> (tp: Int, dp: Int) { (r % tp, r / tp) }
}

/// One training step as one rank measured it. Times in nanoseconds, sizes in bytes.
public struct StepSample: Sendable, Equatable {
  public var step: Int = 0
  public var loss: Float = 0
  public var lr: Float = 0
  public var gradNorm: Float = 0
  public var tokens: Int = 0
  public var stepNs: UInt64 = 0
  public var forwardNs: UInt64 = 0
  public var backwardNs: UInt64 = 0
  public var optimizerNs: UInt64 = 0
  public var commNs: UInt64 = 0
  public var dataNs: UInt64 = 0
  public var allReduceCount: Int = 0
  public var allReduceBytes: UInt64 = 0
  public var allReduceTotalNs: UInt64 = 0
  public var allReduceMaxNs: UInt64 = 0
  /// 16 log2 buckets in microseconds: bucket i holds [2^i, 2^(i+1)) µs.
  public var allReduceHistogram: [UInt32] = Array(repeating: 0, count: 16)
  public var rssBytes: UInt64 = 0
  public var paramBytes: UInt64 = 0
  public var gradBytes: UInt64 = 0
  public var optimizerBytes: UInt64 = 0
  public var activationBytes: UInt64 = 0
  /// Fraction of the step spent computing, 0...1.
  public var computeBusy: Float = 0
  public var gflops: Float = 0
  /// Wall-clock time the record was written (seconds since 1970), 0 when unknown.
  public var wallTime: Double = 0

  /// Creates an empty sample.
  public init() {}
}

/// Per-shard statistics of one tensor on one rank, when the engine publishes them.
public struct ShardStats: Sendable, Equatable {
  public var tensor: Int
  public var rank: Int
  public var step: Int
  public var weightNorm: Float
  public var gradNorm: Float
  public var updateRatio: Float

  /// Creates a statistics record.
  public init(tensor: Int, rank: Int, step: Int, weightNorm: Float, gradNorm: Float, updateRatio: Float) {
    self.tensor = tensor
    self.rank = rank
    self.step = step
    self.weightNorm = weightNorm
    self.gradNorm = gradNorm
    self.updateRatio = updateRatio
  }
}

/// Something that happened between steps.
public struct JobEvent: Sendable, Equatable {
  /// What kind of event.
  public enum Kind: Sendable, Equatable {
    case checkpointSaved, paused, resumed, stopped, nonFinite, error, rankFailed, info
  }
  public var kind: Kind
  /// Reporting world rank, or -1 for the dashboard itself.
  public var rank: Int
  public var step: Int
  /// Seconds since 1970, 0 when unknown.
  public var wallTime: Double
  public var text: String

  /// Creates an event.
  public init(kind: Kind, rank: Int, step: Int, wallTime: Double, text: String) {
    self.kind = kind
    self.rank = rank
    self.step = step
    self.wallTime = wallTime
    self.text = text
  }
}

/// Live header of one rank.
public struct RankHealth: Sendable, Equatable {
  public var rank: Int
  public var pid: Int
  public var host: String
  public var state: RankRunState
  /// Seconds since the rank's last heartbeat.
  public var heartbeatAge: Double
  /// Exit status when the rank has failed and one is known.
  public var exitStatus: Int?

  /// Creates a rank status.
  public init(rank: Int, pid: Int, host: String, state: RankRunState, heartbeatAge: Double,
              exitStatus: Int? = nil) {
    self.rank = rank
    self.pid = pid
    self.host = host
    self.state = state
    self.heartbeatAge = heartbeatAge
    self.exitStatus = exitStatus
  }
}

/// What one poll of a source returned.
public struct SourcePoll: Sendable {
  /// Current header of every rank.
  public var ranks: [RankHealth] = []
  /// New step records per rank since the previous poll, oldest first.
  public var steps: [[StepSample]] = []
  /// Records overwritten before they could be read, per rank.
  public var lost: [Int] = []
  /// New events since the previous poll.
  public var events: [JobEvent] = []
  /// New per-shard statistics.
  public var shardStats: [ShardStats] = []
  /// What the controller currently asks for.
  public var desired: RunRequest = .run
  /// False once the job's segment is gone.
  public var alive: Bool = true
  /// The rank the job is stuck on while the others wait for it, if any.
  public var stall: StallDiagnosis? = nil

  /// Creates an empty poll result.
  public init() {}
}

/// Errors a control request can produce.
public struct ControlError: Error, CustomStringConvertible {
  /// One line describing the failure.
  public var description: String
  /// Creates an error with its message.
  public init(_ description: String) { self.description = description }
}

/// Where the dashboard reads a job from and sends control requests to.
public protocol JobSource: AnyObject {
  /// The job's static description.
  var job: JobSpec { get }
  /// Reads everything new since the previous call. Must be cheap: called several times a second.
  func poll() -> SourcePoll
  /// Asks the whole job to run, pause or stop at the next step boundary.
  func setDesired(_ state: RunRequest) throws
  /// Asks for one checkpoint at the next step boundary.
  func requestCheckpoint() throws
}

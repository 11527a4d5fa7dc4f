// The dashboard's own picture of a job. Sources (the telemetry segment, a synthetic generator)
// translate into these types, so everything from history to rendering is independent of the
// segment's binary layout. What a step measures, the run and desired states and the split kinds
// are JobSchema's, the same types the engine reports and the segment stores.

import JobSchema
import Telemetry

extension RunState {
  /// Lower-case label used in tables (checkpointing is shortened to fit the column).
  public var label: String { self == .checkpointing ? "ckpt" : name }
}

extension ShardedTensor {
  /// Bytes held by TP rank `tp` (fp32 parameters).
  public func localBytes(tp: Int) -> Int { localCount(tp: tp) * MemoryLayout<Float>.size }
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
  public var tensors: [ShardedTensor]
  /// Path of the job's stdout/stderr log, when known.
  public var logPath: String?
  /// The run's memory-saving features (named in the header; the distributed optimizer's
  /// partition is shown in the Shards view).
  public var features: RunFeatures
  /// Read from the run store or event files, not a live segment: it takes no commands, its
  /// ranks have no processes, and q quits.
  public var stored = false
  /// Where the job writes its checkpoints (absolute), when its stored run says; a live segment
  /// does not carry it.
  public var checkpointDirectory: String?

  /// Creates a job description.
  public init(name: String, model: String, tp: Int, dp: Int, totalSteps: Int,
              tensors: [ShardedTensor], logPath: String? = nil, features: RunFeatures = RunFeatures()) {
    self.features = features
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

  /// Under the distributed optimizer: the elements of tensor `i`'s local shard (relative to its
  /// first) whose AdamW state world rank `r` holds, by the engine's partition of the flat
  /// local buffer among the DP ranks; nil without it.
  public func optimizerSlice(tensor i: Int, rank r: Int) -> Range<Int>? {
    guard features.distributedOptimizer, tensors.indices.contains(i) else { return nil }
    let (t, d) = coordinates(ofRank: r)
    let counts = tensors.map { $0.localCount(tp: t) }
    let start = counts[..<i].reduce(0, +)
    let partition = OptimizerPartition(count: counts.reduce(0, +), shards: dp, index: d)
    return partition.slice(ofTensorAt: start..<(start + counts[i]))
  }
}

/// One training step as one rank measured it, and when. The metrics' fields read through the
/// sample (`sample.loss`).
public struct StepSample: StepMetricsCarrier, Sendable, Equatable {
  /// What the rank measured.
  public var metrics = StepMetrics()
  /// Wall-clock time the record was written (seconds since 1970), 0 when unknown.
  public var wallTime: Double = 0

  /// Creates an empty sample.
  public init() {}
}

/// Per-shard statistics of one tensor on one rank, when the engine publishes them.
public struct ShardStats: Sendable, Equatable {
  /// Tensor index (llm.c order).
  public var tensor: Int
  /// World rank holding the shard.
  public var rank: Int
  /// Step the norms were measured at.
  public var step: Int
  /// The shard's norms.
  public var norms: TensorNorms

  /// Creates a statistics record.
  public init(tensor: Int, rank: Int, step: Int, norms: TensorNorms) {
    (self.tensor, self.rank, self.step, self.norms) = (tensor, rank, step, norms)
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
  /// Every rank that reported this same event (kind, step and text), `rank` first.
  public var ranks: [Int]

  /// Creates an event.
  public init(kind: Kind, rank: Int, step: Int, wallTime: Double, text: String) {
    (self.kind, self.rank, self.step, self.wallTime, self.text) = (kind, rank, step, wallTime, text)
    ranks = [rank]
  }

  /// Who reported it, in at most 7 columns: "you" (this dashboard; "tptop" in a stored run:
  /// its recorder), "r3", "r0–3" (a run of ranks), "all" (every one of `world`), or "5 ranks".
  public func reporters(world: Int, stored: Bool = false) -> String {
    if rank < 0 { return stored ? "tptop" : "you" }
    if ranks.count == 1 { return "r\(rank)" }
    if ranks.count >= world { return "all" }
    let lo = ranks.min()!, hi = ranks.max()!
    let run = "r\(lo)–\(hi)"
    return hi - lo + 1 == ranks.count && run.count <= 7 ? run : "\(ranks.count) ranks"
  }
}

/// Live header of one rank.
public struct RankHealth: Sendable, Equatable {
  public var rank: Int
  public var pid: Int
  public var host: String
  public var state: RunState
  /// Seconds since the rank's last heartbeat.
  public var heartbeatAge: Double
  /// Exit status when the rank has failed and one is known.
  public var exitStatus: Int?
  /// The rank's node (0: world rank 0's).
  public var node: Int
  /// Its node stopped reporting: every rank there has been silent too long (its numbers are stale).
  public var lost: Bool
  /// The rank's accelerator (GPU memory and utilisation), when its writer reports one.
  public var device: DeviceUsage? = nil

  /// Creates a rank status.
  public init(rank: Int, pid: Int, host: String, state: RunState, heartbeatAge: Double,
              exitStatus: Int? = nil, node: Int = 0, lost: Bool = false) {
    self.node = node
    self.lost = lost
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
  public var desired: DesiredState = .run
  /// False once the job's segment is gone.
  public var alive: Bool = true
  /// The rank the job is stuck on while the others wait for it, if any.
  public var stall: StallDiagnosis? = nil
  /// Set when the source switched to a supervisor's next incarnation: its job name, and the
  /// last step the failed incarnation reached (failures found later are dated there).
  public var restart: (jobName: String, failedAtStep: Int)? = nil

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
  func setDesired(_ state: DesiredState) throws
  /// Asks for one checkpoint at the next step boundary.
  func requestCheckpoint() throws
}

// The engine's outward interface for telemetry and control. The engine knows nothing about
// shared memory: `tptrain` adapts these calls to the Telemetry segment.

/// Per-rank measurements of one training step. Filled by the trainer in place (no allocation).
public struct StepMetrics: Sendable {
  /// Step number, from 1.
  public var step: Int = 0
  /// Global mean loss of this step (identical on every rank).
  public var loss: Float = 0
  public var lr: Float = 0
  /// Global gradient L2 norm before clipping (identical on every rank).
  public var gradNorm: Float = 0
  /// Tokens this rank's DP replica processed this step (B*T).
  public var tokens: Int = 0
  /// Wall time of the whole step and its split, nanoseconds. `commNs` is the time spent inside
  /// collectives (it overlaps forward/backward, which include it); `dataNs` is batch loading.
  public var stepNs: UInt64 = 0
  public var forwardNs: UInt64 = 0
  public var backwardNs: UInt64 = 0
  public var optimizerNs: UInt64 = 0
  public var commNs: UInt64 = 0
  public var dataNs: UInt64 = 0
  /// All-reduces issued by this rank this step, their payload bytes, total and max latency.
  public var allReduceCount: Int = 0
  public var allReduceBytes: UInt64 = 0
  public var allReduceTotalNs: UInt64 = 0
  public var allReduceMaxNs: UInt64 = 0
  /// log2 latency histogram: bucket i counts calls with latency in [2^i, 2^(i+1)) microseconds;
  /// bucket 0 also holds anything under 1 µs, the last bucket anything above.
  public var allReduceHistogram: LatencyHistogram = LatencyHistogram()
  /// Resident set size of this process, bytes.
  public var rssBytes: UInt64 = 0
  public var paramBytes: UInt64 = 0
  public var gradBytes: UInt64 = 0
  public var optimizerBytes: UInt64 = 0
  public var activationBytes: UInt64 = 0
  /// Fraction of the step spent in compute (not in collectives, data, or idle), 0...1.
  public var computeBusy: Float = 0
  /// Achieved model GFLOP/s of this rank this step.
  public var gflops: Float = 0

  public init() {}
}

/// Fixed-size log2 histogram (16 buckets) usable without allocation.
public struct LatencyHistogram: Sendable, Equatable {
  public static let bucketCount = 16
  public var buckets: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
                       UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
  public init() {}

  public subscript(i: Int) -> UInt32 {
    get { withUnsafeBytes(of: buckets) { $0.load(fromByteOffset: i * 4, as: UInt32.self) } }
    set {
      withUnsafeMutableBytes(of: &buckets) { $0.storeBytes(of: newValue, toByteOffset: i * 4, as: UInt32.self) }
    }
  }

  public static func bucket(forNanoseconds ns: UInt64) -> Int {
    let us = ns / 1000
    if us == 0 { return 0 }
    let b = 63 - us.leadingZeroBitCount
    return min(b, bucketCount - 1)
  }

  public mutating func record(nanoseconds ns: UInt64) { self[Self.bucket(forNanoseconds: ns)] &+= 1 }
  public mutating func reset() { buckets = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }

  public static func == (a: LatencyHistogram, b: LatencyHistogram) -> Bool {
    (0..<bucketCount).allSatisfy { a[$0] == b[$0] }
  }
}

/// What the job should do at the next step boundary. Decided on world rank 0 and broadcast, so
/// every rank applies it at the same step.
public struct ControlDecision: Sendable, Equatable {
  public enum Desired: Int32, Sendable { case run = 0, pause = 1, stop = 2 }
  public var desired: Desired
  /// Monotonic counter of checkpoint requests; a change asks for one checkpoint.
  public var checkpointRequests: Int32
  public init(desired: Desired = .run, checkpointRequests: Int32 = 0) {
    self.desired = desired
    self.checkpointRequests = checkpointRequests
  }
}

/// Run states reported to observers.
public enum RunState: Int32, Sendable {
  case starting = 0, running = 1, paused = 2, checkpointing = 3, finished = 4, failed = 5
}

/// Things that happen between steps.
public enum TrainingEvent: Sendable {
  case checkpointSaved(step: Int, path: String)
  case paused(step: Int)
  case resumed(step: Int)
  case stopped(step: Int)
  case nonFiniteLoss(step: Int)
  case error(String)
}

/// Receives the trainer's measurements and supplies control decisions. Every rank has one.
/// `stepFinished` runs on the training thread after every step and must not block or allocate.
public protocol TrainingObserver: AnyObject {
  func stateChanged(_ state: RunState)
  func stepFinished(_ metrics: StepMetrics)
  /// Called on world rank 0 only, at each step boundary and every tick while paused.
  func pollControl() -> ControlDecision
  /// Called on every rank while paused (about every 10 ms) to keep the heartbeat fresh.
  func heartbeat()
  func event(_ event: TrainingEvent)
  /// Norms of this rank's parameter shards (see the default implementation below).
  func tensorStatistics(step: Int, values: UnsafeBufferPointer<Float>)
}

extension TrainingObserver {
  /// Norms of this rank's parameter shards, every few steps: `values` holds (weight norm,
  /// gradient norm, update/weight ratio) for each of the 16 tensors in llm.c order. The buffer
  /// is only valid during the call. Default: ignored.
  public func tensorStatistics(step: Int, values: UnsafeBufferPointer<Float>) {}
}

/// Observer that ignores everything and never asks for a pause.
public final class NullObserver: TrainingObserver {
  public init() {}
  public func stateChanged(_ state: RunState) {}
  public func stepFinished(_ metrics: StepMetrics) {}
  public func pollControl() -> ControlDecision { ControlDecision() }
  public func heartbeat() {}
  public func event(_ event: TrainingEvent) {}
}

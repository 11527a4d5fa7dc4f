// The one description of a training step's measurements. The engine fills it, the telemetry
// segment encodes it (Telemetry/Records.swift), the dashboard keeps its history. A new metric
// is one field here plus its place in the record encoding.

/// Per-rank measurements of one training step. Times in nanoseconds, sizes in bytes.
///
/// The trainer fills one value in place every step, so it holds no arrays or other references:
/// copying it allocates nothing.
public struct StepMetrics: Sendable, Equatable {
  /// Creates zeroed metrics.
  public init() {}

  /// Step number, from 1.
  public var step: Int = 0
  /// Global mean loss of this step (identical on every rank).
  public var loss: Float = 0
  /// Learning rate applied in this step.
  public var lr: Float = 0
  /// Global gradient L2 norm before clipping (identical on every rank).
  public var gradNorm: Float = 0
  /// Tokens this rank's DP replica processed this step (B*T).
  public var tokens: Int = 0
  /// Wall time of the whole step and its split. `commNs` is the time spent blocked in
  /// collectives (it overlaps forward/backward, which include it); `dataNs` is batch loading.
  public var stepNs: UInt64 = 0
  /// Forward pass wall time.
  public var forwardNs: UInt64 = 0
  /// Backward pass wall time.
  public var backwardNs: UInt64 = 0
  /// Optimizer (gradient all-reduce, norm, AdamW) wall time.
  public var optimizerNs: UInt64 = 0
  /// Exposed communication: time blocked in collectives, or waiting for non-blocking ones
  /// (`comm_exposed_ms`). Without overlap, every collective is exposed for its whole duration.
  public var commNs: UInt64 = 0
  /// Batch loading time.
  public var dataNs: UInt64 = 0
  /// All-reduces issued by this rank this step.
  public var allReduceCount: Int = 0
  /// Their payload bytes.
  public var allReduceBytes: UInt64 = 0
  /// Time at least one of them was in flight (the union of their intervals, `comm_total_ms`);
  /// equal to `commNs` without overlap, larger by the hidden part with it.
  public var allReduceTotalNs: UInt64 = 0
  /// Their largest latency.
  public var allReduceMaxNs: UInt64 = 0
  /// Their latencies as a log2-microsecond histogram.
  public var allReduceHistogram = LatencyHistogram()
  /// Resident set size of this process.
  public var rssBytes: UInt64 = 0
  /// Parameter memory of this rank's shard.
  public var paramBytes: UInt64 = 0
  /// Gradient memory of this rank's shard.
  public var gradBytes: UInt64 = 0
  /// AdamW moment memory of this rank's shard.
  public var optimizerBytes: UInt64 = 0
  /// Activation arena size.
  public var activationBytes: UInt64 = 0
  /// Fraction of the step spent in compute (not in collectives, data, or idle), 0...1.
  public var computeBusy: Float = 0
  /// Achieved model GFLOP/s of this rank this step.
  public var gflops: Float = 0
  /// Of `commNs`, the estimated time spent waiting for a slower peer to arrive, in µs (the
  /// rest is transfer; TPComm's CommActivity says how it is estimated). Segment minor version 3.
  public var commPeerWaitMicros: UInt32 = 0

  /// Exposed communication (`commNs`).
  public var commExposedNs: UInt64 { commNs }
  /// Communication in flight, exposed or hidden behind computation (never below `commNs`).
  public var commTotalNs: UInt64 { max(allReduceTotalNs, commNs) }
  /// Communication hidden behind computation.
  public var commHiddenNs: UInt64 { commTotalNs - commNs }
  /// Exposed time spent waiting for a slower peer.
  public var commPeerWaitNs: UInt64 { min(UInt64(commPeerWaitMicros) * 1000, commNs) }
}

/// A value that carries one step's metrics (a ring record, a dashboard sample) and reads their
/// fields through itself: `record.loss` is `record.metrics.loss`.
@dynamicMemberLookup
public protocol StepMetricsCarrier {
  /// The metrics carried.
  var metrics: StepMetrics { get set }
}

extension StepMetricsCarrier {
  /// A field of the metrics.
  public subscript<T>(dynamicMember field: WritableKeyPath<StepMetrics, T>) -> T {
    get { metrics[keyPath: field] }
    set { metrics[keyPath: field] = newValue }
  }
}

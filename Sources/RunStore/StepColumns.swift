// Where each field of JobSchema's `StepMetrics` goes in the store: one table of columns, named
// as `tptop export` names them, that the writer, the readers and the export all walk. The
// Python writer (python/tptop_telemetry/store.py) writes the same names; a test holds the two
// together.

import JobSchema

/// One stored field of a step record: its column name (the export's field name) and how to read
/// and write it on `StepMetrics`, as a Double (every value fits exactly: integers below 2^53).
public struct StepColumn: Sendable {
  /// Column and export field name, e.g. `step_ns`.
  public let name: String
  /// Whether the field is an integer (stored as INTEGER when exact, REAL for a bucket mean).
  public let integral: Bool
  let get: @Sendable (StepMetrics) -> Double
  let set: @Sendable (inout StepMetrics, Double) -> Void

  /// The field's value in `m`.
  public func value(_ m: StepMetrics) -> Double { get(m) }
  /// Stores `v` into the field of `m` (rounded for integers).
  public func assign(_ v: Double, to m: inout StepMetrics) { set(&m, v) }
}

/// The stored fields of a step record, in export order (the all-reduce histogram is stored as a
/// 64-byte blob beside them).
public enum StepColumns {
  static func int(_ name: String, _ k: WritableKeyPath<StepMetrics, Int> & Sendable) -> StepColumn {
    StepColumn(name: name, integral: true, get: { Double($0[keyPath: k]) },
               set: { m, v in m[keyPath: k] = v.isFinite ? Int(v.rounded()) : 0 })
  }
  static func word(_ name: String, _ k: WritableKeyPath<StepMetrics, UInt64> & Sendable) -> StepColumn {
    StepColumn(name: name, integral: true, get: { Double($0[keyPath: k]) },
               set: { m, v in m[keyPath: k] = v.isFinite && v >= 0 ? UInt64(min(v.rounded(), 1.8e19)) : 0 })
  }
  static func half(_ name: String, _ k: WritableKeyPath<StepMetrics, UInt32> & Sendable) -> StepColumn {
    StepColumn(name: name, integral: true, get: { Double($0[keyPath: k]) },
               set: { m, v in m[keyPath: k] = v.isFinite && v >= 0 ? UInt32(min(v.rounded(), 4e9)) : 0 })
  }
  static func float(_ name: String, _ k: WritableKeyPath<StepMetrics, Float> & Sendable) -> StepColumn {
    StepColumn(name: name, integral: false, get: { Double($0[keyPath: k]) }, set: { m, v in m[keyPath: k] = Float(v) })
  }

  /// Every stored field but the step number and the histogram.
  public static let all: [StepColumn] = [
    float("loss", \.loss), float("lr", \.lr), float("grad_norm", \.gradNorm), int("tokens", \.tokens),
    word("step_ns", \.stepNs), word("forward_ns", \.forwardNs), word("backward_ns", \.backwardNs),
    word("optimizer_ns", \.optimizerNs), word("comm_ns", \.commNs), word("data_ns", \.dataNs),
    int("allreduce_count", \.allReduceCount), word("allreduce_bytes", \.allReduceBytes),
    word("allreduce_total_ns", \.allReduceTotalNs), word("allreduce_max_ns", \.allReduceMaxNs),
    word("rss_bytes", \.rssBytes), word("param_bytes", \.paramBytes), word("grad_bytes", \.gradBytes),
    word("optimizer_bytes", \.optimizerBytes), word("activation_bytes", \.activationBytes),
    float("compute_busy", \.computeBusy), float("gflops", \.gflops), half("comm_peer_wait_us", \.commPeerWaitMicros),
  ]

  /// The column index of `name`, nil when there is none.
  public static func index(_ name: String) -> Int? { all.firstIndex { $0.name == name } }
}

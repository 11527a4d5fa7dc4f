// Every metric `tptop serve` exposes: its name, type and help text, defined once. Names follow
// Prometheus' conventions (base units: seconds, bytes; `_total` for counters). docs/METRICS.md
// lists them with their labels.

import Prometheus
import Telemetry

/// A metric family: name, help text and type.
public struct MetricFamily: Sendable, Equatable {
  /// The Prometheus type.
  public enum Kind: String, Sendable { case gauge, counter, histogram }

  public let name: String
  public let help: String
  public let kind: Kind

  /// The registry's name for it (the whole name as the base name, the unit in it already).
  var descriptor: MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: help) }
}

/// The families, by what they measure.
public enum MetricFamilies {
  // Per rank (labels `RankLabels.names`), from the rank's newest step record and its header.
  public static let step = MetricFamily(name: "tptop_step", help: "Step of the rank's newest step record.", kind: .gauge)
  public static let loss = MetricFamily(name: "tptop_loss", help: "Global mean training loss of that step (NaN or Inf when it was not finite).", kind: .gauge)
  public static let learningRate = MetricFamily(name: "tptop_learning_rate", help: "Learning rate applied in that step.", kind: .gauge)
  public static let gradNorm = MetricFamily(name: "tptop_grad_norm", help: "Global gradient L2 norm before clipping, that step.", kind: .gauge)
  public static let stepSeconds = MetricFamily(name: "tptop_step_seconds", help: "Wall time of that step on this rank, seconds.", kind: .gauge)
  public static let tokensPerSecond = MetricFamily(name: "tptop_tokens_per_second", help: "Tokens of the rank's data-parallel replica per second of its step time, that step.", kind: .gauge)
  public static let commExposedSeconds = MetricFamily(name: "tptop_comm_exposed_seconds", help: "Time the rank was blocked in collectives that step, seconds.", kind: .gauge)
  public static let commInFlightSeconds = MetricFamily(name: "tptop_comm_in_flight_seconds", help: "Time at least one collective was in flight that step (exposed or hidden behind compute), seconds.", kind: .gauge)
  public static let memoryBytes = MetricFamily(name: "tptop_memory_bytes", help: "Memory of the rank by kind: params, grads, optimizer (AdamW moments), activations (arena), rss (resident set), bytes.", kind: .gauge)
  public static let heartbeatAgeSeconds = MetricFamily(name: "tptop_heartbeat_age_seconds", help: "Seconds since the rank's last heartbeat (NaN before the first).", kind: .gauge)
  public static let recordsLost = MetricFamily(name: "tptop_records_lost_total", help: "Records of the rank that this server could not read: overwritten in the ring before it read them, or corrupt.", kind: .counter)
  public static let allReduceLatency = MetricFamily(name: "tptop_allreduce_latency_seconds", help: "All-reduce latency of the rank over the run, from the telemetry's log2 histogram (sum estimated at each bucket's geometric middle).", kind: .histogram)

  // Per job (label `job`).
  public static let jobState = MetricFamily(name: "tptop_job_state", help: "1 for the job's current state, 0 for the others (stalled: a rank stopped while the others wait for it).", kind: .gauge)
  public static let jobInfo = MetricFamily(name: "tptop_job_info", help: "Always 1: the job's grid, model and flags as labels.", kind: .gauge)
  public static let nodesLost = MetricFamily(name: "tptop_nodes_lost", help: "Nodes of the job whose ranks all stopped reporting.", kind: .gauge)

  // Per server.
  public static let segmentsUnreadable = MetricFamily(name: "tptop_segments_unreadable_total", help: "Telemetry segments skipped because they were corrupt, truncated, foreign or vanished while being read.", kind: .counter)

  /// The family named `name` (a step field's `metric`); a name no family has is a mistake in
  /// the step field table, which the endpoint's tests catch.
  static func named(_ name: String) -> MetricFamily {
    guard let f = all.first(where: { $0.name == name }) else { preconditionFailure("no metric family \(name)") }
    return f
  }

  /// Every family, in the order docs/METRICS.md lists them.
  public static let all: [MetricFamily] = [
    step, loss, learningRate, gradNorm, stepSeconds, tokensPerSecond, commExposedSeconds, commInFlightSeconds,
    memoryBytes, heartbeatAgeSeconds, recordsLost, allReduceLatency, jobState, jobInfo, nodesLost, segmentsUnreadable,
  ]

  /// `tptop_memory_bytes{kind=…}` values, in `MemoryKind` order.
  public enum MemoryKind: String, Sendable, CaseIterable { case params, grads, optimizer, activations, rss }

  /// `tptop_job_state{state=…}` values: the job phases' words, one gauge each.
  public typealias JobStateLabel = JobPhase.Word

  /// The all-reduce histogram's `le` bounds, seconds: 2^(i+1) µs for the telemetry's buckets
  /// i = 0…14 (bucket i counts [2^i, 2^(i+1)) µs, bucket 0 also what is under 1 µs); its last
  /// bucket (≥ 2^15 µs) is `+Inf`.
  public static let latencyBounds: [Double] = (0..<15).map { Double(1 << ($0 + 1)) / 1e6 }
}

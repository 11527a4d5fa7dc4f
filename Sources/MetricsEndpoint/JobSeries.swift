// State: one job's time series in the Prometheus registry, updated from each collection. The
// series of a rank are made when it first attaches and removed with the job (or when its host or
// node changes); counters and the latency histogram accumulate over the life of this server.

import JobSchema
import Prometheus
import Telemetry

/// The labels of a rank's series, in this order.
enum RankLabels {
  static let names = ["job", "rank", "tp_rank", "dp_rank", "node", "host"]

  static func values(job: String, status: RankStatus, tp: Int) -> [(String, String)] {
    let t = max(tp, 1)
    return [
      ("job", job), ("rank", "\(status.rank)"), ("tp_rank", "\(status.rank % t)"), ("dp_rank", "\(status.rank / t)"),
      ("node", "\(status.node)"), ("host", status.host),
    ]
  }
}

/// A rank's series.
final class RankSeries {
  let node: Int
  let host: String
  let step, heartbeatAge: Gauge
  /// The step field table's per-rank gauges (`StepField.metric`), each with its field.
  let fields: [(field: StepField, gauge: Gauge)]
  let recordsLost: Counter
  let latency: ValueHistogram

  init(registry: PrometheusCollectorRegistry, labels: [(String, String)], status: RankStatus) {
    typealias F = MetricFamilies
    func gauge(_ f: MetricFamily, _ extra: [(String, String)] = []) -> Gauge {
      registry.makeGauge(descriptor: f.descriptor, labels: labels + extra)
    }
    node = status.node
    host = status.host
    step = gauge(F.step)
    heartbeatAge = gauge(F.heartbeatAgeSeconds)
    fields = StepFields.all.compactMap { f in
      f.metric.map { m in (f, gauge(F.named(m.family), m.label.map { [($0.name, $0.value)] } ?? [])) }
    }
    recordsLost = registry.makeCounter(descriptor: F.recordsLost.descriptor, labels: labels)
    latency = registry.makeValueHistogram(
      descriptor: F.allReduceLatency.descriptor, labels: labels, buckets: F.latencyBounds)
  }

  /// Sets the gauges from the rank's newest step record and header; adds what is new to the
  /// counter and the histogram.
  func update(_ s: RankSample) {
    step.set(to: Double(s.latest?.step ?? 0))
    heartbeatAge.set(to: s.status.heartbeatAge ?? .nan)
    if s.newLost > 0 { recordsLost.increment(by: Int64(clamping: s.newLost)) }
    Self.record(s.newLatencies, into: latency)
    guard let m = s.latest?.metrics else { return }
    for (f, g) in fields { g.set(to: f.metric.map { $0.scaled(f.value(m)) } ?? f.value(m)) }
  }

  /// Adds the calls counted in `h` to `histogram`, each at its bucket's geometric middle,
  /// 2^(i+½) µs: inside the bucket, so every `le` count is exact; the sum is an estimate.
  static func record(_ h: LatencyHistogram, into histogram: ValueHistogram) {
    for i in 0..<LatencyHistogram.bucketCount {
      let n = h[i]
      guard n > 0 else { continue }
      let value = Double(1 << i) * 1.4142135623730951e-6
      for _ in 0..<n { histogram.record(value) }
    }
  }

  func unregister(from registry: PrometheusCollectorRegistry) {
    for g in [step, heartbeatAge] + fields.map(\.gauge) {
      registry.unregisterGauge(g)
    }
    registry.unregisterCounter(recordsLost)
    registry.unregisterValueHistogram(latency)
  }
}

/// One job's series.
///
/// Its ranks' series live in registries of their own, one per `ranksPerRegistry` ranks:
/// swift-prometheus copies a labelled family whenever a series joins it, so registering n ranks
/// in one registry costs O(n²) (1.3–2.7 s for the first collection of 1024 ranks); in groups of
/// 64 it costs O(64 n). The scraper merges the registries' families into one exposition.
final class JobSeries {
  static let ranksPerRegistry = 64

  let job: String
  private let registry: PrometheusCollectorRegistry
  /// The registries of the ranks' series, ranks 64 k ..< 64 (k + 1) in the k-th.
  let rankRegistries: [PrometheusCollectorRegistry]
  private let states: [Gauge]
  private let info: Gauge
  private let nodesLost: Gauge
  private var ranks: [RankSeries?]

  init(registry: PrometheusCollectorRegistry, job: String, info: JobInfo) {
    typealias F = MetricFamilies
    self.job = job
    self.registry = registry
    states = F.JobStateLabel.allCases.map {
      registry.makeGauge(descriptor: F.jobState.descriptor, labels: [("job", job), ("state", $0.rawValue)])
    }
    self.info = registry.makeGauge(descriptor: F.jobInfo.descriptor, labels: Self.infoLabels(job: job, info))
    self.info.set(to: 1)
    nodesLost = registry.makeGauge(descriptor: F.nodesLost.descriptor, labels: [("job", job)])
    ranks = Array(repeating: nil, count: info.worldSize)
    rankRegistries = (0..<(info.worldSize + Self.ranksPerRegistry - 1) / Self.ranksPerRegistry).map { _ in
      PrometheusCollectorRegistry()
    }
  }

  /// `tptop_job_info`'s labels: the grid, the model and the run's flags.
  static func infoLabels(job: String, _ i: JobInfo) -> [(String, String)] {
    let f = i.features
    return [
      ("job", job), ("preset", i.preset), ("world_size", "\(i.worldSize)"), ("tp", "\(i.tp)"), ("dp", "\(i.dp)"),
      ("total_steps", "\(i.totalSteps)"), ("layers", "\(i.model.layers)"), ("channels", "\(i.model.channels)"),
      ("batch", "\(i.model.batch)"), ("seq", "\(i.model.seq)"),
      ("sequence_parallel", "\(f.sequenceParallel)"), ("distributed_optimizer", "\(f.distributedOptimizer)"),
      ("recompute", "\(f.recompute)"), ("overlap_grad_reduce", "\(f.overlapGradReduce)"), ("overlap_tp", "\(f.overlapTP)"),
    ]
  }

  /// Applies one collection.
  func update(_ sample: JobSample) {
    for (g, s) in zip(states, MetricFamilies.JobStateLabel.allCases) { g.set(to: s == sample.state ? 1 : 0) }
    nodesLost.set(to: Double(sample.lostNodes))
    for s in sample.ranks where s.status.attached && s.status.rank < ranks.count {
      let r = s.status.rank
      if let existing = ranks[r], existing.node != s.status.node || existing.host != s.status.host {
        existing.unregister(from: rankRegistries[r / Self.ranksPerRegistry])
        ranks[r] = nil
      }
      let series = ranks[r] ?? RankSeries(
        registry: rankRegistries[r / Self.ranksPerRegistry], labels: RankLabels.values(job: job, status: s.status, tp: sample.info.tp), status: s.status)
      ranks[r] = series
      series.update(s)
    }
  }

  /// Removes every series of the job.
  func unregister() {
    for g in states + [info, nodesLost] { registry.unregisterGauge(g) }
    for (i, r) in ranks.enumerated() { r?.unregister(from: rankRegistries[i / Self.ranksPerRegistry]) }
    ranks = ranks.map { _ in nil }
  }
}

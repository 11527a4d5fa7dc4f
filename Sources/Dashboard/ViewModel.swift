import Foundation
import JobSchema
import Telemetry

// The view model: the header and per-rank rows derived from the history once per frame, with no
// knowledge of cells. It also hands the views the history itself: the charts and heatmaps read
// its sample, event and log series in place rather than copying them every frame.

/// Header facts.
public struct HeaderModel: Equatable, Sendable {
  public var job: String
  public var model: String
  public var grid: String
  /// The active features, e.g. "SP DistOpt recompute=selective" (empty: none).
  public var features: String = ""
  public var state: String
  public var stateStyle: Style
  /// The phase the label says (the header and footer offer only what it allows).
  public var phase: JobPhase
  public var step: Int
  public var totalSteps: Int
  /// Job throughput; nil when no rank reports both tokens and step times.
  public var tokensPerSecond: Double?
  public var etaSeconds: Double?
}

/// One row of the per-rank table.
public struct RankRow: Equatable, Sendable {
  public var rank: Int
  public var tp: Int
  public var dp: Int
  public var hostPid: String
  public var state: RunState
  public var step: Int
  public var loss: Double?
  public var stepMs: Double?
  public var tokensPerSecond: Double?
  public var rssBytes: Double
  public var memoryFraction: Double
  public var allReduceP50Ms: Double?
  public var allReduceMaxMs: Double?
  /// Share of the step the rank was blocked in communication (exposed: what overlap hides
  /// does not count).
  public var commPercent: Double?
  public var utilization: Double?
  public var heartbeatAge: Double
  public var exitStatus: Int?
  public var straggler: Bool
  /// The rank's node, and whether that node stopped reporting.
  public var node: Int = 0
  public var lost: Bool = false
  /// The rank runs on another node and reports there (a namespace's view of one node shows
  /// the job's other ranks this way, not as starting).
  public var remote: Bool = false
  /// Mean forward, backward and optimizer ms per step (nil: not measured).
  public var forwardMs: Double?
  public var backwardMs: Double?
  public var optimizerMs: Double?
  /// Mean ms per step of communication hidden behind computation (nil: no collectives).
  public var hiddenMs: Double?
  /// Mean GFLOP/s (nil: not reported).
  public var gflops: Double?
}

/// A loss series for the chart: points (step, value) after smoothing.
public struct LossSeries: Equatable, Sendable {
  public var rank: Int
  public var points: [(Double, Double)]
  public static func == (a: LossSeries, b: LossSeries) -> Bool {
    a.rank == b.rank && a.points.count == b.points.count
      && zip(a.points, b.points).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
  }
}

/// Everything the views draw, derived from history and state.
public struct DashboardModel {
  public var header: HeaderModel
  public var rows: [RankRow]
  public var state: AppState
  public var history: JobHistory
  public var themeName: String
  /// The glyph set of the terminal the frame is drawn on.
  public var glyphs: Glyphs
  /// Nodes the job's ranks run on, and those that stopped reporting.
  public var nodeCount = 1
  public var lostNodes: [Int] = []

  /// Steps averaged for rates and latencies.
  public static let window = 10

  /// Derives the model. `physicalMemory` scales the memory bars (bytes per rank on this host).
  public init(history h: JobHistory, state: AppState, themeName: String, glyphs: Glyphs = .utf8,
              memoryPerRank: Double = Double(ProcessInfo.processInfo.physicalMemory)) {
    self.history = h
    self.state = state
    self.themeName = themeName
    self.glyphs = glyphs
    let job = h.job
    var rows: [RankRow] = []
    var slowest = -1
    var slowestMs = 0.0
    var msList: [Double] = []
    let perRankMem = max(1, memoryPerRank / Double(max(1, job.worldSize)))
    for r in 0..<job.worldSize {
      let recent = h.samples[r].suffix(DashboardModel.window)
      let status = h.ranks[safe: r]
      let (tp, dp) = job.coordinates(ofRank: r)
      var row = RankRow(
        rank: r, tp: tp, dp: dp,
        // a stored run's ranks have no process: its host alone
        hostPid: status.map { job.stored ? $0.host : "\($0.host):\($0.pid)" } ?? "–",
        state: status?.state ?? .starting, step: recent.last?.step ?? 0,
        loss: recent.last.map { Double($0.loss) }, stepMs: nil, tokensPerSecond: nil,
        rssBytes: Double(recent.last?.rssBytes ?? 0), memoryFraction: 0, allReduceP50Ms: nil,
        allReduceMaxMs: nil, commPercent: nil, utilization: nil,
        heartbeatAge: status?.heartbeatAge ?? .infinity, exitStatus: status?.exitStatus, straggler: false,
        node: status?.node ?? 0, lost: status?.lost ?? false)
      // A field zero in every record of the window is one the writer does not report (a
      // Python loop that times nothing, measures no utilisation, runs no collectives): it is
      // unknown (nil, shown as "–"), never a measured zero.
      if !recent.isEmpty {
        let stepNs = recent.reduce(0.0) { $0 + Double($1.stepNs) } / Double(recent.count)
        row.stepMs = stepNs > 0 ? stepNs / 1e6 : nil
        let tokens = recent.reduce(0.0) { $0 + Double($1.tokens) } / Double(recent.count)
        row.tokensPerSecond = stepNs > 0 && tokens > 0 ? tokens / (stepNs / 1e9) : nil
        row.memoryFraction = min(1, row.rssBytes / perRankMem)
        var hist = Array(repeating: 0.0, count: LatencyHistogram.bucketCount)
        var exposed = 0.0
        var arMax: UInt64 = 0
        for s in recent {
          for i in hist.indices { hist[i] += Double(s.allReduceHistogram[i]) }
          exposed += Double(s.commNs)  // exposed
          arMax = max(arMax, s.allReduceMaxNs)
        }
        row.allReduceP50Ms = DashboardModel.histogramQuantile(hist, 0.5).map { $0 / 1000 }
        row.allReduceMaxMs = recent.contains { $0.allReduceCount > 0 } ? Double(arMax) / 1e6 : nil
        let communicates = exposed > 0 || recent.contains { $0.allReduceCount > 0 || $0.allReduceTotalNs > 0 }
        row.commPercent = stepNs > 0 && communicates ? 100 * exposed / Double(recent.count) / stepNs : nil
        let busy = recent.reduce(0.0) { $0 + Double($1.computeBusy) } / Double(recent.count)
        row.utilization = busy > 0 ? busy : nil
        func meanMs(_ f: (StepSample) -> UInt64) -> Double? {
          let v = recent.reduce(0.0) { $0 + Double(f($1)) } / Double(recent.count) / 1e6
          return v > 0 ? v : nil
        }
        row.forwardMs = meanMs { $0.forwardNs }
        row.backwardMs = meanMs { $0.backwardNs }
        row.optimizerMs = meanMs { $0.optimizerNs }
        row.hiddenMs = communicates ? (meanMs { $0.metrics.commHiddenNs } ?? 0) : nil
        let gf = recent.reduce(0.0) { $0 + Double($1.gflops) } / Double(recent.count)
        row.gflops = gf > 0 ? gf : nil
        if let ms = row.stepMs {
          msList.append(ms)
          if ms > slowestMs { slowestMs = ms; slowest = r }
        }
      }
      rows.append(row)
    }
    // The straggler: the rank the others wait for (the Comm view's), or else the slowest rank
    // when it is measurably slower than the median.
    if let s = CommExposure.straggler(CommExposure.exposures(h)) {
      rows[s.rank].straggler = true
    } else if msList.count > 1, slowest >= 0 {
      let median = msList.sorted()[(msList.count - 1) / 2]  // lower median: with two ranks, the faster one
      if slowestMs > median * 1.02 { rows[slowest].straggler = true }
    }
    // Ranks that never attached here while others did, in a view of a node other than world
    // rank 0's: they run (and report) on another node.
    let attachedNodes = Set(h.ranks.filter { $0.pid != 0 }.map(\.node))
    if !attachedNodes.isEmpty && !attachedNodes.contains(0) {
      for i in rows.indices where (h.ranks[safe: i]?.pid ?? 0) == 0 && rows[i].step == 0 {
        rows[i].remote = true
        // its node as the segment's creator recorded it (unrecorded, 0, in older segments)
        let node = h.ranks[safe: i]?.node ?? 0
        rows[i].hostPid = attachedNodes.contains(node) ? "another node" : "on node \(node)"
      }
    }
    self.rows = rows
    nodeCount = (rows.map(\.node).max() ?? 0) + 1
    lostNodes = Array(Set(rows.filter(\.lost).map(\.node))).sorted()

    let phase = DashboardModel.phase(h)
    let (label, style) = phase.header(glyphs)
    // Job throughput: one TP rank per DP replica processes the replica's tokens, and the
    // replicas step together, so d × the mean of the replicas seen (all of them, except on
    // another node's namespace, which sees only that node's ranks).
    let replicaRates = rows.filter { $0.tp == 0 }.compactMap(\.tokensPerSecond)
    let tps = StepMetrics.jobTokensPerSecond(replicaRates: replicaRates, dp: job.dp)
    let step = h.latestStep
    var eta: Double?
    if job.totalSteps > step, phase == .running {
      // wall time per step from the records' own timestamps (what a step really takes, data
      // loading and everything the job does not time included); the ranks' step_ms only when
      // the records carry no time
      let paced = h.samples.max { ($0.last?.step ?? 0) < ($1.last?.step ?? 0) }.flatMap {
        DashboardModel.secondsPerStep($0.suffix(DashboardModel.etaWindow + 1))
      }
      if let sps = paced ?? rows.compactMap(\.stepMs).max().map({ $0 / 1000 }) {
        eta = Double(job.totalSteps - step) * sps
      }
    }
    header = HeaderModel(job: job.name, model: job.model, grid: GridNotation.text(tp: job.tp, dp: job.dp, times: glyphs.times),
                         state: label, stateStyle: style, phase: phase, step: step, totalSteps: job.totalSteps,
                         tokensPerSecond: tps, etaSeconds: eta)
    header.features = job.features.labels.joined(separator: " ")
  }

  /// The job's phase (`JobPhase.judge`) from what the history holds: the ranks' health, the
  /// desired state, the stall, whether the segment is still there, and mpirun's culprit.
  public static func phase(_ h: JobHistory) -> JobPhase {
    // ranks that never attached (another node's, seen from that node's namespace) tell nothing;
    // a source with no processes at all (a stored run) tells by every rank
    let present = h.ranks.contains { $0.pid != 0 }
    var e = PhaseEvidence(ranks: h.ranks.map { r in
      // the source already judged a rank whose process vanished as failed
      PhaseEvidence.Rank(rank: r.rank, attached: !present || r.pid != 0, state: r.state, heartbeatAge: r.heartbeatAge)
    })
    e.segmentPresent = h.alive
    e.desired = h.desired
    e.ignoresRequest = ignoresRequest(h)
    e.stall = h.stall
    e.lastStep = h.latestStep
    e.totalSteps = h.job.totalSteps
    e.failedRankHint = h.culprit?.rank
    return JobPhase.judge(e)
  }

  /// The job's overall state as the header shows it: the phase's label and style.
  public static func jobState(_ h: JobHistory, glyphs: Glyphs = .utf8) -> (String, Style) { phase(h).header(glyphs) }

  /// Steps a job may take past a pause or stop request before it counts as not honouring it
  /// (tptrain and `wait_while_paused` apply it at the next step boundary: one step).
  public static let honourSlack = 3

  /// Whether the job goes on stepping past the current pause or stop request: it declared that
  /// it applies none, or it took more than `honourSlack` steps since the request.
  public static func ignoresRequest(_ h: JobHistory) -> Bool {
    guard h.desired != .run else { return false }
    return h.job.features.ignoresControl || h.latestStep > h.desiredSinceStep + honourSlack
  }

  /// Steps whose wall-clock pace the ETA follows.
  public static let etaWindow = 32

  /// Wall-clock seconds per step from consecutive records' timestamps: the median of the
  /// per-step gaps (so one pause or a slow checkpoint does not swing it), nil with fewer than
  /// two timed records.
  public static func secondsPerStep(_ samples: [StepSample]) -> Double? {
    var paces: [Double] = []
    for (a, b) in zip(samples, samples.dropFirst()) where a.wallTime > 0 && b.wallTime >= a.wallTime && b.step > a.step {
      paces.append((b.wallTime - a.wallTime) / Double(b.step - a.step))
    }
    guard !paces.isEmpty else { return nil }
    paces.sort()
    let n = paces.count
    return n % 2 == 1 ? paces[n / 2] : (paces[n / 2 - 1] + paces[n / 2]) / 2
  }

  /// Quantile of a log2 µs histogram, in microseconds (geometric middle of the bucket).
  public static func histogramQuantile(_ buckets: [Double], _ q: Double) -> Double? {
    let total = buckets.reduce(0, +)
    guard total > 0 else { return nil }
    var acc = 0.0
    for (i, c) in buckets.enumerated() {
      acc += c
      if acc >= q * total { return i == 0 ? 0.7 : pow(2, Double(i) + 0.5) }
    }
    return pow(2, 15.5)
  }

  /// TensorBoard's debiased exponential moving average of `values` with weight `w`.
  public static func smooth(_ values: [Double], weight w: Double) -> [Double] {
    guard w > 0 else { return values }
    var last = 0.0
    var n = 0
    var out: [Double] = []
    out.reserveCapacity(values.count)
    for v in values {
      guard v.isFinite else { out.append(v); continue }
      n += 1
      last = last * w + (1 - w) * v
      let debias = 1 - pow(w, Double(n))
      out.append(last / debias)
    }
    return out
  }

  /// Smoothed loss series, one per rank.
  public func lossSeries() -> [LossSeries] { series(.loss) }

  /// One metric over the steps in the history, one series per rank, smoothed with the current
  /// EMA weight (the learning rate, a schedule, is never smoothed). A rank whose records never
  /// carry the metric (every value zero: a writer that does not report it) has no points, so
  /// the chart says it is not reported instead of drawing a line at zero.
  public func series(_ metric: Metric) -> [LossSeries] {
    // zoomed in, only the steps shown (the whole history otherwise)
    let shown = history.stepRange.map { state.visibleSteps($0) }
    return (0..<history.job.worldSize).map { r in
      let ring = history.samples[r]
      var xs: [Double] = []
      var ys: [Double] = []
      xs.reserveCapacity(ring.count)
      ys.reserveCapacity(ring.count)
      var reported = metric == .loss
      for i in 0..<ring.count {
        if state.zoomLevel > 0, let shown, !shown.contains(ring[i].step) { continue }
        // a step that did not measure the metric (an untimed first step) leaves no point
        guard let v = metric.value(ring[i]) else { continue }
        if v != 0 { reported = true }
        xs.append(Double(ring[i].step))
        ys.append(v)
      }
      guard reported else { return LossSeries(rank: r, points: []) }
      let sm = metric == .learningRate ? ys : DashboardModel.smooth(ys, weight: state.smoothing)
      return LossSeries(rank: r, points: Array(zip(xs, sm)))
    }
  }

  /// The value of `metric` at `step` on each rank that recorded that step (unsmoothed, as the
  /// rank wrote it), for the chart cursor.
  public func values(_ metric: Metric, atStep step: Int) -> [(rank: Int, value: Double)] {
    (0..<history.job.worldSize).compactMap { r in
      let ring = history.samples[r]
      var lo = 0, hi = ring.count - 1
      while lo <= hi {  // steps ascend within a ring
        let mid = (lo + hi) / 2
        let s = ring[mid].step
        if s == step { return metric.value(ring[mid]).map { (r, $0) } }
        if s < step { lo = mid + 1 } else { hi = mid - 1 }
      }
      return nil
    }
  }

  /// The oldest and newest step any rank's history holds.
  public var stepRange: ClosedRange<Int>? { history.stepRange }
}

extension JobHistory {
  /// Every step some rank's history holds a sample of, ascending (where the cursor can stop).
  public var heldSteps: [Int] {
    var all = Set<Int>()
    for ring in samples { for i in 0..<ring.count { all.insert(ring[i].step) } }
    return all.sorted()
  }

  /// The oldest and newest step any rank's history holds.
  public var stepRange: ClosedRange<Int>? {
    let firsts = samples.compactMap { $0.isEmpty ? nil : $0[0].step }
    let lasts = samples.compactMap { $0.last?.step }
    guard let a = firsts.min(), let b = lasts.max(), a <= b else { return nil }
    return a...b
  }
}

/// A per-step quantity the Overview charts.
public enum Metric: CaseIterable, Sendable {
  case loss, gradNorm, learningRate, stepTime, tokensPerSecond

  /// The value in a sample: loss, global gradient norm, learning rate, step time in ms,
  /// tokens per second of the rank (0 when the writer does not report it); nil for a step that
  /// was not timed (step time and tokens/s).
  public func value(_ s: StepSample) -> Double? {
    switch self {
    case .loss: return Double(s.loss)
    case .gradNorm: return Double(s.gradNorm)
    case .learningRate: return Double(s.lr)
    case .stepTime: return s.stepNs > 0 ? Double(s.stepNs) / 1e6 : nil
    case .tokensPerSecond: return s.stepNs > 0 ? s.metrics.tokensPerSecond : nil
    }
  }
}

extension JobPhase {
  /// The header's label and style of the phase, drawn with `glyphs`.
  public func header(_ glyphs: Glyphs) -> (String, Style) {
    let more = glyphs.ellipsis
    switch self {
    case .starting: return ("starting", .dim)
    case .running: return ("running", .ok)
    case .pausing: return ("pausing\(more)", .warn)
    case .paused: return ("paused", .warn)
    case .resuming: return ("resuming\(more)", .accent)
    case .checkpointing: return ("checkpointing", .accent)
    case .stopping: return ("stopping\(more)", .warn)
    case .ignoring(let d): return ("running: ignores \(d == .stop ? "stop" : "pause")", .error)
    case .stalled(let r): return ("stalled (rank \(r))", .error)
    case .finished: return ("finished", .ok)
    case .stopped: return ("stopped", .warn)
    case .failed(let r): return ("failed" + (r.map { " (rank \($0))" } ?? ""), .error)
    case .stale: return ("stale", .error)
    }
  }

  /// Whether the dashboard offers pause, checkpoint and stop (a job that has ended takes none).
  public var takesCommands: Bool { !isTerminal }
}

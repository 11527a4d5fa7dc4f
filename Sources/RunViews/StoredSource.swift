// `tptop open RUN|LOGDIR`: the dashboard on a run from the store (finished, or live and read as
// its recorder writes it) or on a TensorBoard run. The whole run reaches the dashboard at the
// first poll, in at most `samplesPerRank` samples per rank (consecutive steps averaged), so the
// charts span it from its first step; a live stored run then adds its new rows as they come.

import Dashboard
import Foundation
import JobSchema
import RunStore
import Telemetry
import TensorBoard

/// A stored run as a dashboard source (read-only: control requests are refused).
package final class StoredSource: JobSource {
  package let job: JobSpec
  package let run: StoredRun
  /// The dashboard keeps this many samples per rank.
  package static let samplesPerRank = 720
  private var lastStep: [Int: Int] = [:]
  private var first = true

  package init(run: StoredRun) {
    self.run = run
    let h = run.header
    let m = h.model
    let model = "\(h.preset)" + (m.map { " L\($0.layers) H\($0.heads) C\($0.channels) B\($0.batch) T\($0.seq)" } ?? "")
    var spec = JobSpec(name: h.name + " (stored)", model: model, tp: h.tp, dp: h.dp, totalSteps: h.totalSteps,
                       tensors: h.tensors, features: h.features)
    spec.stored = true
    job = spec
  }

  package func poll() -> SourcePoll {
    var p = SourcePoll()
    p.steps = Array(repeating: [], count: job.worldSize)
    p.lost = Array(repeating: 0, count: job.worldSize)
    let world = job.worldSize
    // the first poll reads the whole run, each rank in at most `samplesPerRank` means of
    // consecutive rows, streaming; later polls read the rows a live run added since
    let counts = first ? ((try? run.rankStepCounts()) ?? [:]) : [:]
    var groups = [Decimator](repeating: Decimator(), count: world)
    for r in 0..<world { groups[r].per = max(1, ((counts[r] ?? 0) + Self.samplesPerRank - 1) / Self.samplesPerRank) }
    let longest = counts.values.max() ?? 0
    if first && longest > Self.samplesPerRank {
      // a long run: SQLite averages windows of steps, so only the points shown are decoded here
      let window = (max(run.header.lastStep, longest * run.header.bucketSteps) + Self.samplesPerRank - 1) / Self.samplesPerRank
      try? run.rankStepMeans(window: window) { s, wallTime in
        guard s.rank >= 0, (s.rank < world) else { return }
        var sample = StepSample()
        sample.metrics = s.metrics
        sample.wallTime = wallTime
        lastStep[s.rank] = max(lastStep[s.rank] ?? Int.min, s.step)
        p.steps[s.rank].append(sample)
      }
      for r in 0..<world { groups[r].per = Int.max }
    }
    let after = lastStep.values.min() ?? Int.min
    try? run.rankSteps(afterStep: after) { s, _, wallTime in
      guard s.rank >= 0, (s.rank < world), (s.step > (lastStep[s.rank] ?? Int.min)) else { return }
      var sample = StepSample()
      sample.metrics = s.metrics
      sample.wallTime = wallTime
      lastStep[s.rank] = s.step
      if let out = groups[s.rank].add(sample) { p.steps[s.rank].append(out) }
    }
    for r in 0..<world { if let out = groups[r].flush() { p.steps[r].append(out) } }
    if first {
      let h = run.header
      try? run.events { e in
        let wallTime = h.wallMinusBootNs.map { Double(Int64(bitPattern: e.timestampNs) &+ $0) / 1e9 } ?? h.started
        p.events.append(TelemetrySource.jobEvent(e, wallTime: wallTime))
      }
      // the store keeps them rank by rank; the Events view reads them in time order
      p.events = p.events.enumerated().sorted { a, b in
        (a.element.wallTime, a.element.step, a.offset) < (b.element.wallTime, b.element.step, b.offset)
      }.map(\.element)
      try? run.shardStats { t in
        for (i, n) in t.entries.enumerated() {
          p.shardStats.append(ShardStats(tensor: t.firstTensor + i, rank: t.rank, step: t.step, norms: n))
        }
      }
    }
    first = false
    let state = RunState.allCases.first { $0.name == run.header.state } ?? (run.header.isLive ? .running : .finished)
    let hosts = run.header.hosts.split(separator: ",").map(String.init)
    p.ranks = (0..<job.worldSize).map { r in
      RankHealth(rank: r, pid: 0, host: hosts.first ?? "?", state: state, heartbeatAge: 0)
    }
    return p
  }

  /// At most `n` samples: runs of consecutive samples averaged field by field.
  package static func decimated(_ samples: [StepSample], to n: Int) -> [StepSample] {
    var d = Decimator()
    d.per = max(1, (samples.count + n - 1) / max(n, 1))
    return samples.compactMap { d.add($0) } + [d.flush()].compactMap { $0 }
  }

  package func setDesired(_ state: DesiredState) throws { throw ControlError("a stored run takes no commands") }
  package func requestCheckpoint() throws { throw ControlError("a stored run takes no commands") }
}

/// Means of runs of `per` consecutive samples (the last sample's step and time).
package struct Decimator {
  package var per = 1
  private var n = 0
  private var sums = [Double](repeating: 0, count: StepColumns.all.count)
  private var last = StepSample()

  /// The group's mean once `per` samples are in.
  package mutating func add(_ s: StepSample) -> StepSample? {
    if per == 1 { return s }
    for (i, c) in StepColumns.all.enumerated() { sums[i] += c.value(s.metrics) }
    last = s
    n += 1
    return n == per ? flush() : nil
  }

  /// The mean of the samples added since the last group, nil when none.
  package mutating func flush() -> StepSample? {
    guard n > 0 else { return nil }
    var out = last
    for (i, c) in StepColumns.all.enumerated() { c.assign(sums[i] / Double(n), to: &out.metrics); sums[i] = 0 }
    n = 0
    return out
  }
}

/// A TensorBoard run as a dashboard source: `train/loss`, `train/lr`, `train/grad_norm`,
/// `perf/step_ms` and `perf/tokens_per_s` (the names tptop writes and most loops use) on one rank.
package final class TensorBoardSource: JobSource {
  package let job: JobSpec
  private var readers: [EventFileReader]
  private let files: [String]
  private var pending: [Int64: StepSample] = [:]
  /// `perf/tokens_per_s` by step, read in this poll: the step's tokens where its step time was read too.
  private var rates: [Int64: Double] = [:]
  private var problems: [String] = []
  /// Event files unwritten this long are a run that has ended.
  package static let endedAfter: TimeInterval = 60

  package init(name: String, files: [String]) throws {
    self.files = files
    readers = try files.map { try EventFileReader(path: $0) }
    var spec = JobSpec(name: name + " (TensorBoard)", model: "event files", tp: 1, dp: 1, totalSteps: 0, tensors: [])
    spec.stored = true
    job = spec
  }

  package func poll() -> SourcePoll {
    var p = SourcePoll()
    for r in readers {
      try? r.readScalars { e in
        var s = pending[e.step] ?? StepSample()
        s.metrics.step = Int(e.step)
        s.wallTime = e.wallTime
        switch e.tag {
        case "train/loss", "loss", "Loss/train", "train_loss": s.metrics.loss = Float(e.value)
        case "train/lr", "lr", "learning_rate": s.metrics.lr = Float(e.value)
        case "train/grad_norm", "grad_norm": s.metrics.gradNorm = Float(e.value)
        case "perf/step_ms": s.metrics.stepNs = UInt64(max(0, e.value) * 1e6)
        case "perf/tokens_per_s": rates[e.step] = e.value
        default: break
        }
        pending[e.step] = s
      }
      if let problem = r.problem, !problems.contains(problem) {
        problems.append(problem)
        p.events.append(JobEvent(kind: .error, rank: -1, step: 0, wallTime: 0, text: problem))
      }
    }
    // a step's tokens from its rate and time (the dashboard divides them again: a rate
    // without a step time shows as unknown, not as tokens per second of a one-second step)
    for (step, rate) in rates {
      guard var s = pending[step], s.metrics.stepNs > 0 else { continue }
      s.metrics.tokens = Int((rate * Double(s.metrics.stepNs) / 1e9).rounded())
      pending[step] = s
    }
    rates.removeAll()
    let samples = pending.keys.sorted().map { pending[$0]! }
    pending.removeAll()
    p.steps = [StoredSource.decimated(samples, to: StoredSource.samplesPerRank)]
    p.lost = [0]
    // event files still being written are a live run; unwritten for a minute, an ended one
    let newest = files.compactMap { (try? FileManager.default.attributesOfItem(atPath: $0)[.modificationDate]) as? Date }.max()
    let ended = newest.map { Date().timeIntervalSince($0) > Self.endedAfter } ?? true
    p.ranks = [RankHealth(rank: 0, pid: 0, host: "-", state: ended ? .finished : .running, heartbeatAge: 0)]
    return p
  }

  package func setDesired(_ state: DesiredState) throws { throw ControlError("a TensorBoard run takes no commands") }
  package func requestCheckpoint() throws { throw ControlError("a TensorBoard run takes no commands") }
}

/// The source for `tptop open NAME`: a TensorBoard run directory, or a stored run.

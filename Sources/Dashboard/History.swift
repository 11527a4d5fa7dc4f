import Foundation
import JobControl
import JobSchema
import Telemetry

// Data collection: what the sampler keeps between polls. One ring of step samples per rank, the
// event list, the latest per-shard statistics and the log tail. Views read it; only `ingest`
// writes it.

/// A fixed-capacity ring that keeps the newest elements.
public struct HistoryRing<Element>: Sendable where Element: Sendable {
  private var storage: [Element] = []
  private var head = 0
  /// Most elements kept.
  public let capacity: Int

  /// Creates an empty ring.
  public init(capacity: Int) { self.capacity = max(1, capacity) }

  /// Number of elements held.
  public var count: Int { storage.count }
  public var isEmpty: Bool { storage.isEmpty }

  /// Appends, dropping the oldest element when full.
  public mutating func append(_ e: Element) {
    if storage.count < capacity { storage.append(e) } else { storage[head] = e; head = (head + 1) % capacity }
  }

  /// Element `i` counting from the oldest.
  public subscript(i: Int) -> Element {
    get { storage[(head + i) % storage.count] }
    set { storage[(head + i) % storage.count] = newValue }
  }

  /// The newest element.
  public var last: Element? { storage.isEmpty ? nil : self[storage.count - 1] }

  /// The newest `n` elements, oldest first.
  public func suffix(_ n: Int) -> [Element] {
    let k = min(n, storage.count)
    return (storage.count - k..<storage.count).map { self[$0] }
  }
}

/// Reads the new lines of a growing log file, keeping the last `capacity`.
public final class LogTail {
  /// The file followed.
  public let path: String
  private var offset: UInt64 = 0
  private var partial = ""
  /// The kept lines, oldest first.
  public private(set) var lines: HistoryRing<String>

  /// Follows `path` (which may not exist yet).
  public init(path: String, capacity: Int = 200) {
    self.path = path
    lines = HistoryRing(capacity: capacity)
  }

  /// Reads what was appended since the last call. Returns true when lines were added.
  @discardableResult
  public func update() -> Bool {
    guard let h = FileHandle(forReadingAtPath: path) else { return false }
    defer { try? h.close() }
    let size = (try? h.seekToEnd()) ?? 0
    if size < offset { offset = 0; partial = "" }  // truncated or replaced
    if size == offset { return false }
    // Never read more than the last 64 KiB: the tail is all the view shows.
    if size - offset > 65_536 { offset = size - 65_536; partial = "" }
    try? h.seek(toOffset: offset)
    let data = (try? h.readToEnd()) ?? Data()
    offset += UInt64(data.count)
    let text = partial + String(decoding: data, as: UTF8.self)
    var parts = text.split(separator: "\n", omittingEmptySubsequences: false)
    partial = String(parts.removeLast())
    for p in parts { lines.append(String(p.replacingOccurrences(of: "\t", with: "  ").replacingOccurrences(of: "\r", with: ""))) }
    return !parts.isEmpty
  }
}

/// Everything the dashboard remembers about the attached job.
public final class JobHistory {
  /// Step samples kept per rank.
  public static let samplesPerRank = 720

  /// The job's static description.
  public private(set) var job: JobSpec
  /// Latest rank headers.
  public private(set) var ranks: [RankHealth] = []
  /// Step samples per world rank, oldest first.
  public private(set) var samples: [HistoryRing<StepSample>]
  /// Records lost per rank (ring overrun before they were read).
  public private(set) var lost: [Int]
  /// Events, oldest first (capped).
  public private(set) var events: HistoryRing<JobEvent> = HistoryRing(capacity: 500)
  /// Latest statistics per (tensor, rank).
  public private(set) var shardStats: [Int: ShardStats] = [:]
  /// What the controller asks for.
  public private(set) var desired: DesiredState = .run
  /// The newest step when `desired` last changed (steps past it were taken after the request).
  public private(set) var desiredSinceStep = 0
  /// False once the segment disappeared.
  public private(set) var alive = true
  /// The job's log file, when known.
  public let log: LogTail?
  /// Incremented whenever anything visible changed (the draw loop skips unchanged frames).
  public private(set) var generation = 0
  /// The rank mpirun reported as the first to die, and mpirun's words, when the log says so.
  public private(set) var culprit: (rank: Int, text: String)?
  /// Wall time of the last poll.
  public private(set) var lastPoll: Double = 0
  /// The rank the job is stuck on while the others wait for it, if any.
  public private(set) var stall: StallDiagnosis?
  /// The last step of the incarnation a supervisor replaced: a failure read from the log after
  /// the restart is dated there, not at the new incarnation's step.
  private var failedIncarnationStep: Int?

  /// Creates an empty history for `job`.
  public init(job: JobSpec) {
    self.job = job
    samples = (0..<job.worldSize).map { _ in HistoryRing(capacity: JobHistory.samplesPerRank) }
    lost = Array(repeating: 0, count: job.worldSize)
    log = job.logPath.map { LogTail(path: $0) }
  }

  /// What makes a stall new: the rank, who waits, and in which collective (not how long).
  static func stallKey(_ s: StallDiagnosis) -> String {
    "\(s.rank)/\(s.waitingRanks)/\(s.collective?.description ?? "")"
  }

  /// Adds an event raised by the dashboard itself (control requests, failures).
  public func note(_ kind: JobEvent.Kind, _ text: String, rank: Int = -1) {
    let step = samples.compactMap { $0.last?.step }.max() ?? 0
    events.append(JobEvent(kind: kind, rank: rank, step: step, wallTime: Date().timeIntervalSince1970, text: text))
    generation += 1
  }

  /// The desired state this dashboard just wrote, shown at once ("pausing…", "resuming…")
  /// rather than at the next poll, which may come only after every rank applied it.
  public func requested(_ d: DesiredState) {
    if d != desired { desired = d; desiredSinceStep = latestStep; generation += 1 }
  }

  /// Appends an event, or counts it into the same event from other ranks: every rank reports
  /// its checkpoint write, pause, resume and stop, and a job of 64 ranks would list each 64
  /// times. Only events a rank reports of the job merge (a rank's failure is about that rank).
  func addEvent(_ e: JobEvent) {
    if e.rank >= 0, e.kind != .rankFailed {
      let recent = max(0, events.count - 4 * max(job.worldSize, 1))
      for i in stride(from: events.count - 1, through: recent, by: -1) {
        let o = events[i]
        if o.rank >= 0, o.kind == e.kind, o.step == e.step, o.text == e.text, !o.ranks.contains(e.rank) {
          events[i].ranks.append(e.rank)
          return
        }
      }
    }
    events.append(e)
  }

  /// Merges one poll.
  public func ingest(_ p: SourcePoll, now: Double = Date().timeIntervalSince1970) {
    lastPoll = now
    var changed = false
    if let r = p.restart {
      job.name = r.jobName
      failedIncarnationStep = r.failedAtStep
      changed = true
    }
    if p.ranks != ranks {
      // Announce newly failed ranks once.
      for r in p.ranks where r.state == .failed && (r.rank >= ranks.count || ranks[r.rank].state != .failed) {
        let status = r.exitStatus.map { "exit status \($0)" } ?? "exit status unknown"
        events.append(JobEvent(kind: .rankFailed, rank: r.rank, step: samples[safe: r.rank]?.last?.step ?? 0,
                               wallTime: now, text: "rank \(r.rank) failed (\(status), last heartbeat \(Format.age(r.heartbeatAge)) ago)"))
      }
      // Heartbeat ages change every poll; count them as a change only when they cross a second.
      if p.ranks.count != ranks.count || zip(p.ranks, ranks).contains(where: {
        $0.state != $1.state || $0.pid != $1.pid || $0.host != $1.host || Int($0.heartbeatAge) != Int($1.heartbeatAge)
          || $0.exitStatus != $1.exitStatus
      }) { changed = true }
      ranks = p.ranks
    }
    for (r, list) in p.steps.enumerated() where r < samples.count && !list.isEmpty {
      for s in list { samples[r].append(s) }
      changed = true
    }
    for (r, n) in p.lost.enumerated() where r < lost.count && n > 0 { lost[r] += n; changed = true }
    for e in p.events { addEvent(e); changed = true }
    for s in p.shardStats { shardStats[s.tensor &* 1024 &+ s.rank] = s; changed = true }
    if p.desired != desired { desired = p.desired; desiredSinceStep = latestStep; changed = true }
    if p.alive != alive { alive = p.alive; changed = true }
    if p.stall.map(Self.stallKey) != stall.map(Self.stallKey) {
      if let s = p.stall { events.append(JobEvent(kind: .error, rank: s.rank, step: latestStep, wallTime: now, text: "stalled: \(s.description)")) }
      changed = true
    } else if p.stall.map({ Int($0.silentSeconds) }) != stall.map({ Int($0.silentSeconds) }) {
      changed = true
    }
    stall = p.stall
    if let log, log.update() {
      changed = true
      findCulprit(log)
    }
    if changed { generation += 1 }
  }

  /// Scans new log lines for mpirun's report of the rank that died first (either of its forms).
  private func findCulprit(_ log: LogTail) {
    guard culprit == nil, let report = MPIFailureReport.parse(log.lines.suffix(log.lines.count).joined(separator: "\n")),
          let r = report.rank else { return }
    culprit = (r, report.mpirunWords)
    events.append(JobEvent(kind: .rankFailed, rank: r, step: failedIncarnationStep ?? samples[safe: r]?.last?.step ?? 0,
                           wallTime: Date().timeIntervalSince1970, text: "mpirun: rank \(r) \(report.mpirunWords)"))
  }

  /// Latest statistics of `tensor` on `rank`.
  public func stats(tensor: Int, rank: Int) -> ShardStats? { shardStats[tensor &* 1024 &+ rank] }

  /// The highest step any rank reported.
  public var latestStep: Int { samples.compactMap { $0.last?.step }.max() ?? 0 }
}

extension Array {
  subscript(safe i: Int) -> Element? { i >= 0 && i < count ? self[i] : nil }
}

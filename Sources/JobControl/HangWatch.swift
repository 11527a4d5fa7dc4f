// Hang detection for the supervisor. A stopped or stuck rank does not die: mpirun keeps running
// and every other rank waits for it in a collective forever. The supervisor watches the job's
// step counter through its telemetry segment and treats a job that makes no step progress for
// the hang timeout as failed: it ends the processes and restarts from the latest checkpoint.

import Foundation
import Telemetry

/// A hang: which rank the job is stuck on and who waits for it.
public struct HangReport: Sendable, Equatable {
  /// The rank that stopped moving (nil when telemetry could not tell).
  public var rank: Int?
  /// The timeout that expired, seconds.
  public var seconds: Double
  /// Ranks waiting for it in a collective.
  public var waitingRanks: [Int]
  /// The collective they wait in.
  public var collective: CollectiveWait?
  /// Last step the job finished.
  public var lastStep: Int
  /// The incarnation never started: no segment, or no rank attached, within the start timeout.
  public var neverStarted: Bool

  /// Creates a report.
  public init(rank: Int?, seconds: Double, waitingRanks: [Int], collective: CollectiveWait?, lastStep: Int,
              neverStarted: Bool = false) {
    self.rank = rank
    self.seconds = seconds
    self.waitingRanks = waitingRanks
    self.collective = collective
    self.lastStep = lastStep
    self.neverStarted = neverStarted
  }

  /// "made no progress for 3 s (waiting ranks: 0 in all-reduce #5 of step 131)", or
  /// "did not start within 300 s (no rank attached to its telemetry segment)".
  public var reason: String {
    if neverStarted {
      return "did not start within \(HangWatch.format(seconds)) s (no rank attached to its telemetry segment)"
    }
    let waiting = waitingRanks.isEmpty ? "no rank waiting in a collective"
      : "waiting ranks: " + waitingRanks.map(String.init).joined(separator: ", ")
        + (collective.map { " in \($0.description)" } ?? "")
    return "made no progress for \(HangWatch.format(seconds)) s (\(waiting))"
  }

  /// "rank 1 made no progress for 3 s (waiting ranks: 0 in all-reduce #5 of step 131)".
  public var description: String { (rank.map { "rank \($0)" } ?? "the job") + " " + reason }
}

/// Watches one incarnation's step progress; `check` says when it has hung.
///
/// The timeout is `timeout` seconds, or by default max(`defaultFloor`, `defaultStepMultiple` ×
/// the recent median step time). The clock restarts at every new step, when a checkpoint write
/// begins, and while the job is paused with every rank's heartbeat fresh (a paused rank beats;
/// one stopped while paused does not, and a paused job with a stalled rank is not idle but
/// stuck); during a checkpoint write (slow file I/O, no steps) the timeout is at least
/// `checkpointFloor` while every rank beats (a writer beats from a helper thread, its peers
/// as they wait), and the ordinary timeout once one has gone silent, writer or not: a stopped
/// process beats from no thread, so that is a hang, not a slow disk. Until a rank has
/// attached to the segment (mpirun stuck, a rank stopped as it starts) the limit is
/// `startTimeout`.
public struct HangWatch {
  /// Default timeout floor, seconds.
  public static let defaultFloor = 60.0
  /// Default timeout as a multiple of the recent median step time.
  public static let defaultStepMultiple = 20.0
  /// Least timeout while a rank writes a checkpoint, seconds.
  public static let checkpointFloor = 300.0

  /// Telemetry job name of the incarnation.
  public let job: String
  /// The namespace of the job's segment.
  public let space: SegmentSpace
  /// Fixed timeout in seconds; nil for the default rule.
  public let timeout: Double?
  /// Seconds the incarnation may take to create its segment and attach a rank.
  public let startTimeout: Double
  /// Default `startTimeout`, seconds: generous (mpirun's start over many hosts, a slow disk).
  public static let defaultStartTimeout = 300.0
  private var reader: JobReader?
  private var started = false
  private var lastStep = -1
  private var checkpointing = false
  private let launchedAt: Double
  private var lastProgress: Double

  /// Watches `job` from `now` (seconds on any monotonic clock, the same `check` gets).
  public init(job: String, in space: SegmentSpace, timeout: Double?, startTimeout: Double = defaultStartTimeout, now: Double) {
    self.space = space
    self.job = job
    self.timeout = timeout
    self.startTimeout = startTimeout
    launchedAt = now
    lastProgress = now
  }

  /// The timeout in force: `timeout`, or the default rule for a median step of `median` seconds.
  public static func limit(timeout: Double?, medianStepSeconds median: Double?) -> Double {
    timeout ?? max(defaultFloor, defaultStepMultiple * (median ?? 0))
  }

  /// Returns a report once the job has made no progress for the timeout, else nil.
  public mutating func check(now: Double) -> HangReport? {
    if reader == nil { reader = try? JobReader(job: job, in: space) }
    if !started, reader?.ranks().contains(where: \.attached) == true { started = true; lastProgress = now }
    guard started, let reader else {
      guard now - launchedAt >= startTimeout else { return nil }
      return HangReport(rank: nil, seconds: startTimeout, waitingRanks: [], collective: nil, lastStep: 0,
                        neverStarted: true)
    }
    let ranks = reader.ranks()
    let live = ranks.filter { $0.attached && $0.state != .finished && $0.state != .failed }
    let step = ranks.map(\.lastStep).max() ?? 0
    var limit = Self.limit(timeout: timeout, medianStepSeconds: reader.recentMedianStepSeconds())
    // a rank writing its checkpoint makes no steps but beats from a helper thread (tptrain's
    // WriteHeartbeat), and its peers beat as they wait: a write only while every rank beats. A
    // silent writer is stopped (no thread of it runs), a silent rank that is not writing was
    // stopped before it began. A forwarded rank's heartbeat is the time its node last sent,
    // and a node sends nothing while it writes: its writers are trusted by their state.
    let silentAfter = min(limit / 2, reader.stallThreshold())
    let writing = live.contains { $0.state == .checkpointing }
      && live.allSatisfy { ($0.state == .checkpointing && $0.forwarded) || ($0.heartbeatAge ?? .infinity) <= silentAfter }
    let idle = live.contains(where: { $0.state == .paused })
      && StallDiagnosis.judge(ranks, threshold: reader.stallThreshold(), frozenThreshold: reader.stallThreshold()) == nil
    if step != lastStep || (writing && !checkpointing) || idle {
      lastStep = step
      lastProgress = now
    }
    checkpointing = writing
    if writing { limit = max(limit, Self.checkpointFloor) }
    guard now - lastProgress >= limit, !live.isEmpty else { return nil }
    // name the rank with the stale heartbeat: waiting ranks beat every millisecond or so
    let diagnosis = StallDiagnosis.judge(ranks, threshold: min(limit / 2, reader.stallThreshold()),
                                         frozenThreshold: min(limit / 2, reader.frozenThreshold()))
    let oldest = live.max { ($0.heartbeatAge ?? .infinity) < ($1.heartbeatAge ?? .infinity) }
    return HangReport(
      rank: diagnosis?.rank ?? oldest?.rank, seconds: limit,
      waitingRanks: diagnosis?.waitingRanks ?? live.filter { $0.waiting != nil }.map(\.rank),
      collective: diagnosis?.collective ?? live.first { $0.waiting != nil }?.waiting, lastStep: step)
  }

  /// "3", "2.5": seconds without a needless fraction.
  static func format(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(format: "%.1f", s)
  }
}

// Which rank holds a job up. Tensor parallelism blocks every rank in each collective until the
// last one arrives, so one stopped or stuck rank freezes them all, and every heartbeat looks the
// same unless waiting is told apart from not moving: a rank publishes the collective it blocks in
// (rank header words `waitingIn`, `waitSinceNs`) and keeps beating while it waits; a rank that is
// computing, stopped or stuck does not. The dashboard, `tptop ls`, `tptop watch` and the
// supervisor all judge with `StallDiagnosis.judge`.

import JobSchema

/// A collective a rank is blocked in, as its header publishes it.
public struct CollectiveWait: Sendable, Equatable {
  /// Kinds of collective (raw values as stored in bits 0–7 of the `waitingIn` word).
  public typealias Kind = CollectiveKind

  /// Which collective.
  public var kind: Kind
  /// Its ordinal among the step's collectives of this kind, from 1.
  public var ordinal: Int
  /// The step being run (the last finished step + 1).
  public var step: Int
  /// Seconds the rank has been waiting.
  public var seconds: Double

  /// "all-reduce #5 of step 131".
  public var description: String { "\(kind.name) #\(ordinal) of step \(step)" }
}

extension CollectiveWait {
  /// Decodes a `waitingIn` word; nil for 0 (not waiting) or an unknown kind.
  init?(word: UInt64, sinceNs: UInt64, nowNs: UInt64) {
    guard let kind = Kind(rawValue: UInt8(truncatingIfNeeded: word)) else { return nil }
    self.kind = kind
    ordinal = Int((word >> 8) & 0xFF_FFFF)
    step = Int(word >> 32)
    seconds = nowNs > sinceNs && sinceNs != 0 ? Double(nowNs - sinceNs) / 1e9 : 0
  }
}

/// The rank a job is stuck on: its heartbeat stopped while other ranks wait for it in a
/// collective.
public struct StallDiagnosis: Sendable, Equatable {
  /// World rank of the stalled rank.
  public var rank: Int
  /// Seconds since its last heartbeat.
  public var silentSeconds: Double
  /// World ranks waiting for it (fresh heartbeat, blocked in a collective).
  public var waitingRanks: [Int]
  /// The collective the first waiting rank is blocked in.
  public var collective: CollectiveWait?
  /// Every live rank whose heartbeat is old (the stalled one among them).
  public var silentRanks: [Int]
  /// Live ranks of the job: when all of them are silent, the whole job is frozen.
  public var liveRanks: Int

  /// Creates a diagnosis.
  public init(rank: Int, silentSeconds: Double, waitingRanks: [Int], collective: CollectiveWait?,
              silentRanks: [Int]? = nil, liveRanks: Int = 0) {
    self.rank = rank
    self.silentSeconds = silentSeconds
    self.waitingRanks = waitingRanks
    self.collective = collective
    self.silentRanks = silentRanks ?? [rank]
    self.liveRanks = liveRanks
  }

  /// "rank 1: no progress for 12 s; ranks 0, 2, 3 waiting for it in all-reduce #5 of step 131";
  /// with no rank waiting, "rank 0: no heartbeat for 12 s (every rank silent: the job is frozen)".
  public var description: String { "rank \(rank): \(detail)" }

  /// `description` without the leading "rank 1: ".
  public var detail: String {
    if waitingRanks.isEmpty {
      let others = silentRanks.count >= liveRanks ? "every rank silent: the job is frozen"
        : silentRanks.count == 1 ? "the other ranks still beat" : "ranks " + silentRanks.map(String.init).joined(separator: ", ") + " silent"
      return "no heartbeat for \(Int(silentSeconds)) s (\(others))"
    }
    let who = waitingRanks.count == 1 ? "rank \(waitingRanks[0])" : "ranks " + waitingRanks.map(String.init).joined(separator: ", ")
    let inWhat = collective.map { " in \($0.description)" } ?? ""
    return "no progress for \(Int(silentSeconds)) s; \(who) waiting for it\(inWhat)"
  }

  /// Seconds of heartbeat silence after which a rank counts as stalled: 10 × the recent median
  /// step time, at least `floor` (a rank beats after every step and while it waits or pauses).
  public static func threshold(medianStepSeconds: Double?, floor: Double = 5) -> Double {
    max(floor, 10 * (medianStepSeconds ?? 0))
  }

  /// The stalled rank among `ranks`, if any: a rank whose heartbeat is older than `threshold`
  /// (the oldest such) while at least one other rank, with a fresh heartbeat, waits in a
  /// collective. Heartbeats are written by the ranks themselves (after every step, while waiting
  /// and while paused), so a running or paused rank silent for longer than `frozenThreshold` is
  /// stalled too, whether or not another rank waits on it: every rank stopped at once, or one
  /// stopped while the others are paused (nil: only the first rule, e.g. before the first step,
  /// whose length is unknown). Finished, failed and unattached ranks are ignored; a job in which
  /// a rank writes a checkpoint (slow file I/O without beats) is never judged stalled.
  public static func judge(_ ranks: [RankStatus], threshold: Double, frozenThreshold: Double? = nil) -> StallDiagnosis? {
    let live = ranks.filter { $0.attached && $0.state != .finished && $0.state != .failed }
    if live.contains(where: { $0.state == .checkpointing }) { return nil }
    func age(_ r: RankStatus) -> Double { r.heartbeatAge ?? .infinity }
    let waiting = live.filter { $0.waiting != nil && age($0) <= threshold }
    let silent = live.filter { age($0) > threshold }
    if !waiting.isEmpty, let stalled = silent.max(by: { age($0) < age($1) }) {
      return StallDiagnosis(
        rank: stalled.rank, silentSeconds: stalled.heartbeatAge ?? 0, waitingRanks: waiting.map(\.rank),
        collective: waiting[0].waiting, silentRanks: silent.map(\.rank), liveRanks: live.count)
    }
    guard let frozenThreshold else { return nil }
    let frozen = live.filter { ($0.state == .running || $0.state == .paused) && age($0) > frozenThreshold }
    guard let stalled = frozen.max(by: { age($0) < age($1) }) else { return nil }
    return StallDiagnosis(
      rank: stalled.rank, silentSeconds: stalled.heartbeatAge ?? 0, waitingRanks: [], collective: nil,
      silentRanks: frozen.map(\.rank), liveRanks: live.count)
  }
}

// The job's phase, judged once. Every reader of a job asks `JobPhase.judge` what the job is
// doing and maps the answer to its own words or actions: `tptop ls` and the job picker (one
// word), `watch` (when to stop and with which exit status), the dashboard's header (label and
// style), the control commands (whether a job still takes commands), the metrics endpoint (its
// one-hot `state` label), the run store (the run's state) and the launcher (whether a name is
// free). No reader compares rank states or words of its own.

import JobSchema

/// What a job is doing, as its rank headers, its control page, the stall diagnosis and its
/// planned step count tell.
public enum JobPhase: Sendable, Equatable {
  /// No rank has reported yet, or a live rank is still starting.
  case starting
  /// Every live rank runs.
  case running
  /// A pause was asked for and not every live rank has paused yet.
  case pausing
  /// Every live rank is paused.
  case paused
  /// A resume was asked for while a rank is still paused.
  case resuming
  /// A rank is writing a checkpoint.
  case checkpointing
  /// A stop was asked for and the ranks have not all ended yet.
  case stopping
  /// The job goes on stepping past a pause or stop request (it declared that it applies none,
  /// or it took more steps than a request allows since).
  case ignoring(DesiredState)
  /// A rank holds the others up (`StallDiagnosis`).
  case stalled(rank: Int)
  /// Every rank finished its planned last step.
  case finished
  /// Every rank finished before the planned last step (a stop request or a signal).
  case stopped
  /// A rank reported failure, or its process vanished without finishing; the rank that failed
  /// first when known.
  case failed(rank: Int?)
  /// The job is gone without a finished mark: nothing attached and its creator exited, or its
  /// segment removed while ranks had not finished.
  case stale

  /// The one word of each phase: `ls` and its `--state`, the job picker, `watch`, the metrics
  /// endpoint's `state` label and the run store's state.
  public enum Word: String, Sendable, CaseIterable {
    case starting, running, pausing, paused, resuming, checkpointing, stopping, stalled, finished, stopped, failed, stale
  }

  /// The phase's word (a job ignoring a request is `running`: it runs).
  public var word: Word {
    switch self {
    case .starting: return .starting
    case .running, .ignoring: return .running
    case .pausing: return .pausing
    case .paused: return .paused
    case .resuming: return .resuming
    case .checkpointing: return .checkpointing
    case .stopping: return .stopping
    case .stalled: return .stalled
    case .finished: return .finished
    case .stopped: return .stopped
    case .failed: return .failed
    case .stale: return .stale
    }
  }

  /// Whether the job has ended (finished, stopped, failed or stale): it takes no more commands
  /// and nothing more will be reported.
  public var isTerminal: Bool {
    switch self {
    case .finished, .stopped, .failed, .stale: return true
    default: return false
    }
  }

  /// Whether the job ended as planned or on request (finished or stopped), not by a failure.
  public var endedCleanly: Bool { self == .finished || self == .stopped }

  /// The rank that failed first, for a failed job.
  public var failedRank: Int? {
    if case .failed(let r) = self { return r }
    return nil
  }

  /// The phases that count as live in `--state live`.
  public static let liveWords: [Word] = Word.allCases.filter { w in
    ![Word.finished, .stopped, .failed, .stale].contains(w)
  }
}

/// What a job's phase is judged from.
public struct PhaseEvidence: Sendable {
  /// One rank's part.
  public struct Rank: Sendable, Equatable {
    /// World rank.
    public var rank: Int
    /// Whether the rank has opened the segment (ranks of another node never do).
    public var attached: Bool
    /// Its reported state; nil for an unknown word (counted as starting).
    public var state: RunState?
    /// Whether its process exists.
    public var processAlive: Bool
    /// Seconds since its last heartbeat; nil before the first.
    public var heartbeatAge: Double?
    /// The desired state it last applied; nil when unknown. A rank paused without having
    /// applied a pause (a writer that pauses on its own) is paused, not resuming, when the
    /// control page says run.
    public var applied: DesiredState?

    /// Creates a rank's evidence.
    public init(rank: Int, attached: Bool = true, state: RunState?, processAlive: Bool = true, heartbeatAge: Double? = 0,
                applied: DesiredState? = nil) {
      (self.rank, self.attached, self.state, self.processAlive, self.heartbeatAge) = (rank, attached, state, processAlive, heartbeatAge)
      self.applied = applied
    }
  }

  /// Every rank of the job (or of the node a namespace shows).
  public var ranks: [Rank]
  /// Whether the process that created the segment still exists.
  public var creatorAlive = true
  /// Whether the segment is still in /dev/shm (a reader holding a mapping of a removed segment
  /// knows the job is gone).
  public var segmentPresent = true
  /// Seconds of silence after which a rank whose process is gone counts as failed.
  public var staleAfter: Double = 5
  /// The control page's desired state; nil when not read (or unknown): then only the ranks'
  /// own states tell pausing from paused.
  public var desired: DesiredState? = nil
  /// Whether the job steps on past the current pause or stop request.
  public var ignoresRequest = false
  /// The rank that holds the job up, if the caller diagnosed one.
  public var stall: StallDiagnosis? = nil
  /// The highest step any rank reported, and the steps the job plans to run (0: unknown).
  public var lastStep = 0
  public var totalSteps = 0
  /// The rank that died first as mpirun reported it, which overrides the rank headers' guess.
  public var failedRankHint: Int? = nil

  /// Evidence from the ranks alone.
  public init(ranks: [Rank]) { self.ranks = ranks }
}

extension JobPhase {
  /// Whether one rank has failed: it reported failure, or it is not finished, its process is
  /// gone and it has been silent longer than `staleAfter` seconds.
  public static func rankFailed(_ r: PhaseEvidence.Rank, staleAfter: Double) -> Bool {
    guard r.attached else { return false }
    if r.state == .failed { return true }
    return r.state != .finished && !r.processAlive && (r.heartbeatAge ?? .infinity) > staleAfter
  }

  /// The rank that failed first: one that reported failure, else, of the ranks whose process
  /// vanished without finishing, the one silent longest. Nil when no rank failed.
  public static func firstFailedRank(_ rs: [PhaseEvidence.Rank], staleAfter: Double) -> Int? {
    let attached = rs.filter(\.attached)
    if let r = attached.first(where: { $0.state == .failed }) { return r.rank }
    let dead = attached.filter { rankFailed($0, staleAfter: staleAfter) }
    return dead.max { ($0.heartbeatAge ?? .infinity) < ($1.heartbeatAge ?? .infinity) }?.rank
  }

  /// The job's phase. In order: failed if a rank failed; starting (or stale, when the creator
  /// is gone) while no rank attached; finished, or stopped before the planned last step, once
  /// every attached rank finished; stale when the segment was removed before that; stalled when
  /// a live rank holds the others up; then what the control page asked and the live ranks show:
  /// starting while every live rank starts; pausing / paused / ignoring a pause, stopping /
  /// ignoring a stop, resuming while a rank that applied the pause is still paused (with no control page read:
  /// checkpointing, then paused); checkpointing, starting, running.
  public static func judge(_ e: PhaseEvidence) -> JobPhase {
    let attached = e.ranks.filter(\.attached)
    if let r = firstFailedRank(e.ranks, staleAfter: e.staleAfter) { return .failed(rank: e.failedRankHint ?? r) }
    if attached.isEmpty { return e.creatorAlive && e.segmentPresent ? .starting : .stale }
    if attached.allSatisfy({ $0.state == .finished }) {
      return e.totalSteps > 0 && e.lastStep < e.totalSteps ? .stopped : .finished
    }
    if !e.segmentPresent { return .stale }
    let live = attached.filter { $0.state != .finished }
    let checkpointing = live.contains { $0.state == .checkpointing }
    if let s = e.stall, !checkpointing { return .stalled(rank: s.rank) }
    let starting = { (r: PhaseEvidence.Rank) in r.state == .starting || r.state == nil }
    if live.allSatisfy(starting) { return .starting }
    let somePaused = live.contains { $0.state == .paused }
    switch e.desired {
    case .pause?:
      if live.allSatisfy({ $0.state == .paused }) { return .paused }
      return e.ignoresRequest ? .ignoring(.pause) : .pausing
    case .stop?:
      return e.ignoresRequest ? .ignoring(.stop) : .stopping
    case .run?:
      if live.contains(where: { $0.state == .paused && $0.applied != .run }) { return .resuming }
      if somePaused { return .paused }
    case nil:
      if checkpointing { return .checkpointing }
      if somePaused { return .paused }
    }
    if checkpointing { return .checkpointing }
    if live.contains(where: starting) { return .starting }
    return .running
  }
}

extension JobPhase {
  /// A rank's answer to the control page: its state and the desired state it last applied.
  public struct Acknowledgement: Sendable, Equatable {
    public var state: RunState?
    public var applied: DesiredState?
    public init(state: RunState?, applied: DesiredState?) { (self.state, self.applied) = (state, applied) }
  }

  /// Whether every rank has carried out `desired`: paused having applied the pause (or
  /// finished), running again having applied the resume, or ended after a stop.
  public static func applied(_ desired: DesiredState, by ranks: [Acknowledgement]) -> Bool {
    switch desired {
    case .pause: return ranks.allSatisfy { $0.applied == .pause && $0.state == .paused || $0.state == .finished }
    case .run: return ranks.allSatisfy { $0.applied == .run && $0.state != .paused }
    case .stop: return ranks.allSatisfy { $0.state == .finished || $0.state == .failed }
    }
  }
}

extension RankStatus {
  /// This rank's answer to the control page (`JobPhase.applied`).
  public var acknowledgement: JobPhase.Acknowledgement { .init(state: state, applied: ackedState) }

  /// This rank's part of the evidence for `JobPhase.judge`.
  public var phaseEvidence: PhaseEvidence.Rank {
    PhaseEvidence.Rank(rank: rank, attached: attached, state: state, processAlive: pidAlive, heartbeatAge: heartbeatAge,
                       applied: ackedState)
  }
}

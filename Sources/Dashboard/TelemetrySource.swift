import Foundation
import JobControl
import JobSchema
import Telemetry

// The adapter from the telemetry segment's reader to the dashboard's own model: the dashboard
// file that turns `JobReader` and its records into the model. The vocabulary
// both sides share (step metrics, states, split kinds) passes through unchanged.

/// A job read from its shared-memory telemetry segment.
public final class TelemetrySource: JobSource {
  public let job: JobSpec
  private(set) var reader: JobReader
  /// Supplies the launcher's exit status of the job (mpirun's), when this process launched it.
  public var launcherStatus: (() -> Int32?)?
  private var segmentPath: String
  /// The namespace of the job's segments (its incarnations' too).
  public let space: SegmentSpace
  /// Follow a supervised job's restarts (`tptop supervise` names incarnation k `<job>.r<k>`).
  public var followRestarts = true
  private let baseName: String
  private var incarnation = 0
  /// When /dev/shm was last listed for a suffixed incarnation name (monotonic seconds).
  private var lastListing = -Double.infinity

  /// Attaches to `name`. `logPath` is the job's stdout/stderr log, when known.
  /// - Throws: the telemetry error (one line) when the job cannot be attached.
  public init(job name: String, in space: SegmentSpace, logPath: String?) throws {
    reader = try JobReader(job: name, in: space)
    self.space = space
    let info = reader.info
    let m = info.model
    // only the dimensions the job declared: a writer given no model leaves them 0 (unknown)
    let dims = [("L", m.layers), ("H", m.heads), ("C", m.channels), ("B", m.batch), ("T", m.seq)]
      .filter { $0.1 > 0 }.map { "\($0.0)\($0.1)" }
    let model = ([info.preset] + dims).filter { !$0.isEmpty }.joined(separator: " ")
    job = JobSpec(name: name, model: model, tp: info.tp, dp: info.dp, totalSteps: info.totalSteps,
                  tensors: info.shards, logPath: logPath, features: info.features)
    segmentPath = space.path(job: name)
    // attaching to `<base>.r<k>` (or `<base>.r<k>.<hex>`) follows later incarnations of the same base
    (baseName, incarnation) = IncarnationName.parse(name)
  }

  /// The job name of the incarnation being read.
  public var currentJobName: String { reader.info.description.name }

  /// Switches to the next incarnation when the supervisor has started one; returns the event
  /// and the step the failed incarnation reached.
  private func followRestart(now: Double) -> (JobEvent, failedAtStep: Int)? {
    guard followRestarts, let (next, r) = nextIncarnation() else { return nil }
    let failedAtStep = reader.ranks().map(\.lastStep).max() ?? 0
    reader = r
    incarnation += 1
    segmentPath = space.path(job: next)
    let event = JobEvent(kind: .info, rank: -1, step: failedAtStep, wallTime: now,
                         text: "restarted by the supervisor: now following \(next) (incarnation \(incarnation))")
    return (event, failedAtStep)
  }

  /// The segment of incarnation `incarnation + 1` under either of its names (`<base>.r<k>`, or
  /// `<base>.r<k>.<hex>` when the supervisor found the first taken), this user's and of the same
  /// world size; of several, the newest. Checks the usual name first: listing /dev/shm is the
  /// slower path, taken at most once a second and only when the usual name is missing or not
  /// this job's.
  private func nextIncarnation() -> (String, JobReader)? {
    let k = incarnation + 1
    let usual = IncarnationName.name(base: baseName, incarnation: k)
    if access(space.path(job: usual), F_OK) == 0, let r = try? JobReader(job: usual, in: space),
      r.info.worldSize == job.worldSize
    {
      return (usual, r)
    }
    let now = Double(telemetryMonotonicNanos()) / 1e9
    guard now - lastListing >= 1 else { return nil }
    lastListing = now
    var best: (String, JobReader)?
    for name in space.allJobs() where name != usual && IncarnationName.incarnation(of: name, base: baseName) == k {
      guard let r = try? JobReader(job: name, in: space), r.info.worldSize == job.worldSize else { continue }
      if best.map({ r.info.creationTime > $0.1.info.creationTime }) ?? true { best = (name, r) }
    }
    return best
  }

  /// The default log path of a job launched by tptop, whether or not it exists.
  public static func defaultLogPath(job: String) -> String { LogFiles.path(job: job) }

  public func poll() -> SourcePoll {
    var p = SourcePoll()
    let nowMono = Double(telemetryMonotonicNanos()) / 1e9
    let nowWall = Date().timeIntervalSince1970
    func wall(_ ns: UInt64) -> Double { ns == 0 ? nowWall : nowWall - (nowMono - Double(ns) / 1e9) }
    if let (e, failedAtStep) = followRestart(now: nowWall) {
      p.events.append(e)
      p.restart = (currentJobName, failedAtStep)
    }
    let polls = reader.poll()
    p.steps = Array(repeating: [], count: job.worldSize)
    p.lost = Array(repeating: 0, count: job.worldSize)
    for rp in polls where rp.rank < job.worldSize {
      p.lost[rp.rank] = Int(clamping: rp.lost)
      p.steps[rp.rank] = rp.steps.map { r in
        var s = StepSample()
        s.metrics = r.metrics
        s.wallTime = wall(r.timestampNs)
        return s
      }
      for t in rp.tensorStats {
        for (i, n) in t.entries.enumerated() {
          p.shardStats.append(ShardStats(tensor: t.firstTensor + i, rank: rp.rank, step: t.step, norms: n))
        }
      }
      // every rank's events: the history lists what several ranks report alike once, with
      // who reported it (JobHistory.addEvent)
      for e in rp.events { p.events.append(TelemetrySource.event(e, wallTime: wall(e.timestampNs))) }
    }
    let status = launcherStatus?()
    let headers = reader.ranks()
    let lostNodes = Set(JobReader.lostNodes(headers, after: reader.stallThreshold()))
    p.ranks = headers.map { r in
      // A state word with no known value (nil) shows as starting, like a rank that has not
      // reported yet: the header is the rank's own and is rewritten at its next state change.
      var state = r.state ?? .starting
      if !r.attached { state = .starting }
      // A rank whose process vanished without finishing has failed, whatever its header says
      // (the phase's own rule for a rank).
      if JobPhase.rankFailed(r.phaseEvidence, staleAfter: reader.staleAfter) { state = .failed }
      var health = RankHealth(rank: r.rank, pid: Int(r.pid), host: r.host.isEmpty ? "?" : r.host, state: state,
                              heartbeatAge: r.heartbeatAge ?? .infinity, exitStatus: state == .failed ? status.map(Int.init) : nil,
                              node: r.node, lost: r.attached && lostNodes.contains(r.node))
      health.device = r.device
      return health
    }
    // An unknown desired-state word shows as run: what the job itself makes of it.
    p.desired = reader.control().desired ?? .run
    p.alive = access(segmentPath, F_OK) == 0
    p.stall = reader.stallDiagnosis()
    return p
  }

  static func event(_ e: EventRecord, wallTime: Double) -> JobEvent {
    let kind: JobEvent.Kind
    let text: String
    switch e.kind {
    case .checkpointSaved: kind = .checkpointSaved; text = "checkpoint saved" + (e.text.isEmpty ? "" : ": \(e.text)")
    case .paused: kind = .paused; text = "paused at step \(e.step)"
    case .resumed: kind = .resumed; text = "resumed at step \(e.step)" + (e.text.isEmpty ? "" : ": \(e.text)")
    case .stopped: kind = .stopped; text = "stopped at step \(e.step)"
    case .nonFiniteLoss: kind = .nonFinite; text = "NaN/Inf loss at step \(e.step)" + (e.text.isEmpty ? "" : ": \(e.text)")
    case .error: kind = .error; text = "error: \(e.text)"
    }
    return JobEvent(kind: kind, rank: e.rank, step: e.step, wallTime: wallTime, text: text)
  }

  public func setDesired(_ state: DesiredState) throws {
    do { try reader.request(state) } catch let e as TelemetryError { throw ControlError(e.description) }
  }

  public func requestCheckpoint() throws {
    do { try reader.requestCheckpoint() } catch let e as TelemetryError { throw ControlError(e.description) }
  }
}

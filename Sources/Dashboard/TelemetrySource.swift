import Foundation
import JobControl
import Telemetry

// The adapter from the telemetry segment's reader to the dashboard's own model.

/// A job read from its shared-memory telemetry segment.
public final class TelemetrySource: JobSource {
  public let job: JobSpec
  private(set) var reader: JobReader
  private var seenEvents = Set<String>()
  private var eventOrder: [String] = []
  /// Supplies the launcher's exit status of the job (mpirun's), when this process launched it.
  public var launcherStatus: (() -> Int32?)?
  private var segmentPath: String
  /// Follow a supervised job's restarts (`tptop supervise` names incarnation k `<job>.r<k>`).
  public var followRestarts = true
  private let baseName: String
  private var incarnation = 0

  /// Attaches to `name`. `logPath` is the job's stdout/stderr log, when known.
  /// - Throws: the telemetry error (one line) when the job cannot be attached.
  public init(job name: String, logPath: String?) throws {
    reader = try JobReader(job: name)
    let info = reader.info
    let m = info.model
    let model = "\(m.preset) L\(m.layers) H\(m.heads) C\(m.channels) B\(m.batch) T\(m.seq)"
    let tensors = info.shards.map { s in
      ShardTensorInfo(name: s.name, shape: s.shape, split: ShardSplit(rawValue: Int(s.split.rawValue)) ?? .replicated,
                      splitDim: s.splitDim, ranges: s.ranks, descriptions: s.rankDescriptions)
    }
    job = JobSpec(name: name, model: model, tp: info.tp, dp: info.dp, totalSteps: info.totalSteps,
                  tensors: tensors, logPath: logPath)
    segmentPath = "/dev/shm/" + SegmentName.prefix + name
    // attaching to `<base>.r<k>` follows later incarnations of the same base
    if let dot = name.range(of: ".r", options: .backwards), let k = Int(name[dot.upperBound...]), k > 0 {
      baseName = String(name[..<dot.lowerBound])
      incarnation = k
    } else {
      baseName = name
    }
  }

  /// The job name of the incarnation being read.
  public var currentJobName: String { reader.info.description.name }

  /// Switches to the next incarnation when the supervisor has started one.
  private func followRestart(now: Double) -> JobEvent? {
    let next = "\(baseName).r\(incarnation + 1)"
    guard followRestarts, access("/dev/shm/" + SegmentName.prefix + next, F_OK) == 0,
      let r = try? JobReader(job: next), r.info.worldSize == job.worldSize
    else { return nil }
    reader = r
    incarnation += 1
    segmentPath = "/dev/shm/" + SegmentName.prefix + next
    seenEvents.removeAll()
    eventOrder.removeAll()
    return JobEvent(kind: .info, rank: -1, step: 0, wallTime: now,
                    text: "restarted by the supervisor: now following \(next) (incarnation \(incarnation))")
  }

  /// The default log path of a job launched by tptop, whether or not it exists.
  public static func defaultLogPath(job: String) -> String { LogFiles.path(job: job) }

  public func poll() -> SourcePoll {
    var p = SourcePoll()
    let nowMono = Double(telemetryMonotonicNanos()) / 1e9
    let nowWall = Date().timeIntervalSince1970
    func wall(_ ns: UInt64) -> Double { ns == 0 ? nowWall : nowWall - (nowMono - Double(ns) / 1e9) }
    if let e = followRestart(now: nowWall) { p.events.append(e) }
    let polls = reader.poll()
    p.steps = Array(repeating: [], count: job.worldSize)
    p.lost = Array(repeating: 0, count: job.worldSize)
    for rp in polls where rp.rank < job.worldSize {
      p.lost[rp.rank] = Int(clamping: rp.lost)
      p.steps[rp.rank] = rp.steps.map { r in
        var s = StepSample()
        s.step = r.step
        s.loss = r.loss
        s.lr = r.lr
        s.gradNorm = r.gradNorm
        s.tokens = r.tokens
        s.stepNs = r.stepNs
        s.forwardNs = r.forwardNs
        s.backwardNs = r.backwardNs
        s.optimizerNs = r.optimizerNs
        s.commNs = r.commNs
        s.dataNs = r.dataNs
        s.allReduceCount = r.allReduceCount
        s.allReduceBytes = r.allReduceBytes
        s.allReduceTotalNs = r.allReduceTotalNs
        s.allReduceMaxNs = r.allReduceMaxNs
        s.allReduceHistogram = (0..<16).map { r.bucket($0) }
        s.rssBytes = r.rssBytes
        s.paramBytes = r.paramBytes
        s.gradBytes = r.gradBytes
        s.optimizerBytes = r.optimizerBytes
        s.activationBytes = r.activationBytes
        s.computeBusy = r.computeBusy
        s.gflops = r.gflops
        s.wallTime = wall(r.timestampNs)
        return s
      }
      for t in rp.tensorStats {
        for (i, n) in t.entries.enumerated() {
          p.shardStats.append(ShardStats(tensor: t.firstTensor + i, rank: rp.rank, step: t.step, weightNorm: n.weightNorm,
                                         gradNorm: n.gradNorm, updateRatio: n.updateRatio))
        }
      }
      for e in rp.events {
        // Every rank reports job-wide events (pause, resume, stop): show each once.
        let key = "\(e.kind.rawValue)/\(e.step)/\(e.text)"
        guard seenEvents.insert(key).inserted else { continue }
        eventOrder.append(key)
        if eventOrder.count > 2000 { seenEvents.remove(eventOrder.removeFirst()) }
        p.events.append(TelemetrySource.event(e, wallTime: wall(e.timestampNs)))
      }
    }
    let status = launcherStatus?()
    p.ranks = reader.ranks().map { r in
      var state: RankRunState = r.state.map { RankRunState(rawValue: Int($0.rawValue)) ?? .starting } ?? .starting
      if !r.attached { state = .starting }
      // A rank whose process vanished without finishing has failed, whatever its header says.
      if r.attached && state != .finished && state != .failed && !r.pidAlive && (r.heartbeatAge ?? .infinity) > reader.staleAfter {
        state = .failed
      }
      return RankHealth(rank: r.rank, pid: Int(r.pid), host: r.host.isEmpty ? "?" : r.host, state: state,
                        heartbeatAge: r.heartbeatAge ?? .infinity, exitStatus: state == .failed ? status.map(Int.init) : nil)
    }
    switch reader.control().desired {
    case .pause?: p.desired = .pause
    case .stop?: p.desired = .stop
    default: p.desired = .run
    }
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
    case .resumed: kind = .resumed; text = "resumed at step \(e.step)"
    case .stopped: kind = .stopped; text = "stopped at step \(e.step)"
    case .nonFiniteLoss: kind = .nonFinite; text = "NaN/Inf loss at step \(e.step)" + (e.text.isEmpty ? "" : ": \(e.text)")
    case .error: kind = .error; text = "error: \(e.text)"
    }
    return JobEvent(kind: kind, rank: e.rank, step: e.step, wallTime: wallTime, text: text)
  }

  public func setDesired(_ state: RunRequest) throws {
    do {
      switch state {
      case .run: try reader.request(.run)
      case .pause: try reader.request(.pause)
      case .stop: try reader.request(.stop)
      }
    } catch let e as TelemetryError { throw ControlError(e.description) }
  }

  public func requestCheckpoint() throws {
    do { try reader.requestCheckpoint() } catch let e as TelemetryError { throw ControlError(e.description) }
  }
}

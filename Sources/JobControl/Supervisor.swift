// Automatic restart after a rank dies. Tensor parallelism keeps no weight redundancy: one lost
// rank loses the job, and mpirun tears the rest down. The supervisor runs the mpirun command,
// waits, works out which rank failed and why (mpirun's report on stderr, plus the job's telemetry
// when it has a segment), and relaunches from the newest checkpoint with `--resume`, up to K
// times. Each incarnation gets its own telemetry job name (`<job>.r<k>`), because segments are
// created exclusively and the dead incarnation's segment is left for post-mortem reading.

import CheckpointLayout
import Foundation
import Glibc
import JobSchema
import Telemetry

/// The rank whose death ended an incarnation, as far as it could be determined.
public struct RankFailure: Sendable, Equatable {
  /// World rank, nil when neither mpirun nor telemetry named one.
  public var rank: Int?
  /// "was killed by signal 9 (Killed)", "exited with code 3", ...
  public var reason: String
  /// Last step the rank reported through telemetry, when known.
  public var lastStep: Int?

  /// Creates a failure description.
  public init(rank: Int?, reason: String, lastStep: Int? = nil) {
    self.rank = rank
    self.reason = reason
    self.lastStep = lastStep
  }

  /// "rank 1 was killed by signal 9 (Killed) after step 42".
  public var description: String {
    let who = rank.map { "rank \($0)" } ?? "a rank"
    return "\(who) \(reason)" + (lastStep.map { " after step \($0)" } ?? "")
  }
}

/// What the supervisor did, in order; `JobSupervisor.onEvent` receives each.
public enum SupervisorEvent: Sendable {
  /// Incarnation `incarnation` (0 = first launch) started with this command line; `job` is its
  /// telemetry job name (nil with --no-telemetry).
  case launched(incarnation: Int, command: [String], job: String?)
  /// The incarnation made no step progress for the hang timeout; its processes are being ended.
  case hung(incarnation: Int, report: HangReport)
  /// The incarnation ended with a non-zero status because a rank failed.
  case failed(incarnation: Int, failure: RankFailure, status: Int32)
  /// Relaunching; `resume` is the checkpoint directory passed to --resume (nil: from scratch,
  /// no checkpoint was written yet).
  case restarting(incarnation: Int, resume: String?)
  /// The incarnation's usual job name is taken by a segment that is not a dead leftover of this
  /// job (another user's file, a live job): it runs as `instead`.
  case nameTaken(incarnation: Int, name: String, instead: String)
  /// The job ended: success, stopped on request, out of restarts, or a setup error.
  case finished(incarnation: Int, status: Int32, summary: String)
}

/// How one incarnation's end is handled: the job is over, or a rank failed and it restarts.
public enum IncarnationVerdict: Sendable, Equatable {
  /// The job is over; `status` is the exit status to report.
  case done(status: Int32, summary: String)
  /// A rank failed or the job hung: relaunch from the latest checkpoint if restarts remain.
  case rankFailed
}

/// Runs `mpirun … tptrain …` and relaunches it from its latest checkpoint after a rank failure.
///
///     let sup = JobSupervisor(mpirun: ["mpirun", "-np", "2"], tptrain: "/path/tptrain",
///                             arguments: ["--model", "tiny", "--checkpoint-dir", "ck", "--checkpoint-every", "20"],
///                             restarts: 1, in: .default)
///     sup.onEvent = { print($0) }
///     let status = sup.run()
///
/// Not restarted: a zero exit, a stop the supervisor was asked for (`stop()`) or that a reader
/// asked for through the control page (a requested stop is final, also when a rank dies before
/// it is applied), a non-finite loss, or a setup error (tptrain printed `tptrain: error: …`
/// without a rank dying: a relaunch would fail the same way).
public final class JobSupervisor: @unchecked Sendable {
  /// mpirun and its own arguments (everything before the tptrain executable).
  public let mpirun: [String]
  /// The tptrain executable.
  public let tptrain: String
  /// tptrain's arguments for the first incarnation.
  public let arguments: [String]
  /// Relaunches allowed after failures.
  public let restarts: Int
  /// Receives every event (from the thread calling `run()`).
  public var onEvent: (SupervisorEvent) -> Void = { _ in }
  /// Seconds between checks of the running incarnation.
  public var pollInterval: Double = 0.05
  /// Seconds without step progress after which an incarnation counts as hung and is ended
  /// (`HangWatch`); nil: the default rule; 0: never (also without telemetry).
  public var hangTimeout: Double? = nil
  /// Seconds an incarnation may take to create its telemetry segment and attach a rank before it
  /// counts as hung (`HangWatch.startTimeout`); 0: never.
  public var startTimeout: Double = HangWatch.defaultStartTimeout

  private let lock = NSLock()
  private var current: Process?
  private var stopRequested = false

  /// The namespace the incarnations' segments are looked for in.
  public let space: SegmentSpace

  /// A supervisor of `mpirun tptrain arguments`; nothing runs until `run()`.
  public init(mpirun: [String], tptrain: String, arguments: [String], restarts: Int, in space: SegmentSpace) {
    self.space = space
    self.mpirun = mpirun
    self.tptrain = tptrain
    self.arguments = arguments
    self.restarts = restarts
  }

  // MARK: Argument handling

  /// The value of `--name V` or `--name=V` in `args` (the last one wins).
  public static func value(of name: String, in args: [String]) -> String? {
    var found: String?
    var i = 0
    while i < args.count {
      if args[i] == name, i + 1 < args.count { found = args[i + 1]; i += 2; continue }
      if args[i].hasPrefix(name + "=") { found = String(args[i].dropFirst(name.count + 1)) }
      i += 1
    }
    return found
  }

  /// `args` without any `--name V` / `--name=V`.
  public static func removing(_ name: String, from args: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < args.count {
      if args[i] == name { i += 2; continue }
      if args[i].hasPrefix(name + "=") { i += 1; continue }
      out.append(args[i])
      i += 1
    }
    return out
  }

  /// The checkpoint directory tptrain writes to for `args` (its own rule, `Checkpoints.writeDirectory`).
  public static func checkpointDirectory(_ args: [String]) -> String {
    Checkpoints.writeDirectory(checkpointDir: value(of: TrainingFlag.checkpointDir.flag, in: args),
                               resume: value(of: TrainingFlag.resume.flag, in: args))
  }

  /// Telemetry job name of incarnation `k` of `base`: the base itself, then `<base>.r<k>`
  /// (JobSchema's `IncarnationName`, which readers follow restarts by).
  public static func jobName(base: String, incarnation k: Int) -> String {
    IncarnationName.name(base: base, incarnation: k)
  }

  /// A name for incarnation `k` that nobody can have taken in advance: `<base>.r<k>.<8 random
  /// hex digits>` (used when `jobName` is taken).
  public static func unpredictableJobName(base: String, incarnation k: Int) -> String {
    IncarnationName.unpredictable(base: base, incarnation: k, nonce: UInt32.random(in: 0...UInt32.max))
  }

  /// Whether a segment (or any file) holds job name `job` in /dev/shm.
  static func nameTaken(_ job: String, in space: SegmentSpace) -> Bool {
    access(space.path(job: job), F_OK) == 0
  }

  /// Relaunches of one incarnation under a fresh name after tptrain found its name taken
  /// (`TrainingExit.jobNameTaken`: created between the check and the start); they use no restart.
  static let renameAttempts = 3

  /// tptrain arguments of incarnation `k`: the first incarnation's, with the job renamed and, once
  /// `resume` is set, `--resume <dir>` in place of --resume/--init-from and an explicit
  /// --checkpoint-dir so later checkpoints land in the same place.
  public static func arguments(_ base: [String], incarnation k: Int, job: String?, resume: String?) -> [String] {
    var args = base
    if let job {
      args = removing(TrainingFlag.job.flag, from: args) + [TrainingFlag.job.flag, job]
    }
    if let resume, k > 0 {
      let dir = checkpointDirectory(base)
      for f in [TrainingFlag.initFrom, .resume, .checkpointDir] { args = removing(f.flag, from: args) }
      args += [TrainingFlag.checkpointDir.flag, dir, TrainingFlag.resume.flag, resume]
    }
    return args
  }

  // MARK: Failure analysis

  /// Judges how an incarnation ended, by tptrain's exit `status` (`TrainingExit`, which mpirun
  /// passes on) and never by its words: whether `stop()` was called, whether every rank ended
  /// cleanly (`stoppedCleanly`: its telemetry says finished, as after the checkpoint a signal
  /// asks for), whether the job's control page asks for a stop, and whether the supervisor ended
  /// it for a hang (`hung`: restarted like a dead rank unless a stop was requested, whatever the
  /// killed ranks printed). `stderr` serves only mpirun's own report of a killed rank.
  public static func verdict(status: Int32, stderr: String, stopRequested: Bool, controlStop: Bool,
                             hung: Bool = false, stoppedCleanly cleanStop: Bool = false) -> IncarnationVerdict {
    if status == 0 || (stopRequested && cleanStop) {
      return .done(status: 0, summary: cleanStop ? "stopped on request after a checkpoint" : "finished")
    }
    if stopRequested { return .done(status: status, summary: "stopped on request") }
    if controlStop {
      return .done(status: status, summary: "ended after a stop was requested; not restarting (a requested stop is final)")
    }
    if hung { return .rankFailed }
    if status == TrainingExit.nonFinite.rawValue {
      return .done(status: status, summary: "stopped on a non-finite loss or gradient norm; not restarting (it would recur)")
    }
    if status == TrainingExit.jobNameTaken.rawValue {
      return .done(status: status, summary: "its telemetry job name is taken; not restarting")
    }
    if TrainingExit.wouldRecur(status) && MPIFailureReport.parse(stderr)?.killedBySignal != true {
      return .done(status: status, summary: status == TrainingExit.outputFailed.rawValue
        ? "tptrain could not write an output; not restarting" : "tptrain failed during setup; not restarting")
    }
    return .rankFailed
  }

  /// Whether every rank of job `job` that attached ended finished (a signal's stop writes its
  /// checkpoint, then the rank reads finished); false without telemetry.
  public static func endedCleanly(job: String?, in space: SegmentSpace) -> Bool {
    guard let job, let reader = try? JobReader(job: job, in: space) else { return false }
    let attached = reader.ranks().filter(\.attached)
    return !attached.isEmpty && attached.allSatisfy { $0.state == .finished }
  }

  /// Whether job `job`'s control page asks for a stop (`tptop stop`, the dashboard's S).
  public static func controlStopRequested(job: String?, in space: SegmentSpace) -> Bool {
    guard let job, let reader = try? JobReader(job: job, in: space) else { return false }
    return reader.control().desired == .stop
  }

  /// Adds what the job's telemetry segment knows: the failed rank's last step, or, when mpirun
  /// named no rank, the rank that reported itself failed.
  public static func enrich(_ failure: RankFailure?, job: String?, in space: SegmentSpace) -> RankFailure {
    var f = failure ?? RankFailure(rank: nil, reason: "died (mpirun named no rank)")
    guard let job, let reader = try? JobReader(job: job, in: space) else { return f }
    let ranks = reader.ranks()
    if f.rank == nil, let failed = ranks.first(where: { $0.state == .failed }) {
      f.rank = failed.rank
      f.reason = "reported a failure"
    }
    if let r = f.rank, r >= 0, r < ranks.count, ranks[r].attached { f.lastStep = ranks[r].lastStep }
    return f
  }

  /// Removes job `job`'s segment when every process that wrote it is gone (a leftover of an
  /// earlier supervisor), so the incarnation can create it; a live job's segment is left alone.
  public static func removeDeadSegment(_ job: String, in space: SegmentSpace) {
    guard let r = try? JobReader(job: job, in: space) else { return }
    if !r.ranks().contains(where: { $0.pidAlive }) && !processAlive(r.info.creatorPid) {
      try? SegmentWriter.remove(job: job, in: space)
    }
  }

  // MARK: Running

  /// Asks the running incarnation to checkpoint and stop (SIGTERM to its ranks, which all stop at
  /// the next step boundary), and disables restarts. Safe from any thread.
  public func stop() {
    lock.lock()
    stopRequested = true
    let p = current
    lock.unlock()
    guard let p, p.isRunning else { return }
    let ranks = ProcessTable.children(of: p.processIdentifier)
    if ranks.isEmpty { p.terminate() } else { for pid in ranks { kill(pid, SIGTERM) } }
  }

  /// Runs incarnations until one succeeds, a stop is requested, a setup error occurs or the
  /// restarts are used up; returns the exit status to report (0 for success or a clean stop).
  public func run() -> Int32 {
    let telemetry = !arguments.contains(TrainingFlag.noTelemetry.flag)
    let baseJob = telemetry ? (Self.value(of: TrainingFlag.job.flag, in: arguments) ?? SegmentName.defaultJobName()) : nil
    let dir = Self.checkpointDirectory(arguments)
    var resume: String? = nil
    var incarnation = 0
    var renames = 0
    var forceFreshName = false
    while true {
      var job = baseJob.map { Self.jobName(base: $0, incarnation: incarnation) }
      if let j = job, let base = baseJob {
        Self.removeDeadSegment(j, in: space)
        // a later incarnation's usual name can be taken in advance by another user (a file in
        // /dev/shm): skip it for one nobody can guess; the first keeps the name asked for
        if incarnation > 0 && (forceFreshName || Self.nameTaken(j, in: space)) {
          let fresh = Self.unpredictableJobName(base: base, incarnation: incarnation)
          onEvent(.nameTaken(incarnation: incarnation, name: j, instead: fresh))
          job = fresh
        }
      }
      forceFreshName = false
      let args = Self.arguments(arguments, incarnation: incarnation, job: job, resume: resume)
      let command = mpirun + [tptrain] + args
      onEvent(.launched(incarnation: incarnation, command: command, job: job))
      let (status, stderr, hang) = launch(command, incarnation: incarnation, job: job)
      if hang == nil, status == TrainingExit.jobNameTaken.rawValue, incarnation > 0, renames < Self.renameAttempts {
        // taken between the check and tptrain's start: the same incarnation under a fresh name
        renames += 1
        forceFreshName = true
        continue
      }
      lock.lock()
      let stopped = stopRequested
      lock.unlock()
      let verdict = Self.verdict(status: status, stderr: stderr, stopRequested: stopped,
                                 controlStop: status != 0 && Self.controlStopRequested(job: job, in: space), hung: hang != nil,
                                 stoppedCleanly: stopped && status != 0 && Self.endedCleanly(job: job, in: space))
      if case .done(let code, let summary) = verdict {
        onEvent(.finished(incarnation: incarnation, status: code, summary: summary))
        return code
      }
      let report = MPIFailureReport.parse(stderr)
      let failure = hang.map { Self.enrich(RankFailure(rank: $0.rank, reason: $0.reason), job: job, in: space) }
        ?? Self.enrich(report.map { RankFailure(rank: $0.rank, reason: $0.reason) }, job: job, in: space)
      onEvent(.failed(incarnation: incarnation, failure: failure, status: status))
      if incarnation >= restarts {
        onEvent(.finished(incarnation: incarnation, status: status, summary: "out of restarts (\(restarts))"))
        return status
      }
      incarnation += 1
      renames = 0
      resume = Checkpoints.latest(in: dir) != nil ? dir : nil
      onEvent(.restarting(incarnation: incarnation, resume: resume))
    }
  }

  /// The supervisor's line for a restart as incarnation `k` from checkpoint directory `resume`
  /// (nil: from scratch). It names the checkpoint the restart takes, the newest whose files
  /// verify against its manifest's sizes and checksums (tptrain takes the same, by the same
  /// rule), and says why newer ones were passed over.
  public static func restartLine(incarnation k: Int, resume: String?) -> String {
    guard let dir = resume else { return "restarting as incarnation \(k) from scratch (no checkpoint yet)" }
    let (chosen, passedOver) = Checkpoints.latestVerified(in: dir)
    let skipped = passedOver.map { "\(Checkpoints.lastComponent($0.path)): \($0.reason)" }.joined(separator: "; ")
    guard let chosen else {
      return "restarting as incarnation \(k) from \(dir), which holds no checkpoint whose files verify (\(skipped))"
    }
    let name = Checkpoints.lastComponent(chosen.path)
    if passedOver.isEmpty { return "restarting as incarnation \(k) from the latest checkpoint in \(dir) (\(name), checksums verified)" }
    return "restarting as incarnation \(k) from the previous complete checkpoint in \(dir) (\(name), checksums verified); "
      + "passed over \(skipped)"
  }

  /// Ends a hung incarnation's ranks: SIGKILL (it works on stopped processes too). mpirun then
  /// reaps them and exits; `launch` SIGKILLs it too if it has not after `mpirunGrace` seconds.
  private func end(_ p: Process) {
    let ranks = ProcessTable.children(of: p.processIdentifier)
    if ranks.isEmpty { kill(p.processIdentifier, SIGKILL) }
    for pid in ranks { kill(pid, SIGKILL) }
  }

  /// Seconds mpirun gets to exit after its ranks were killed for a hang.
  static let mpirunGrace = 3.0

  /// Starts `command`, passes stdout through, copies stderr through while keeping it, and waits;
  /// ends the processes if telemetry job `job` hangs (see `hangTimeout`).
  private func launch(_ command: [String], incarnation: Int, job: String?) -> (Int32, String, HangReport?) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Executables.resolve(command[0]))
    p.arguments = Array(command.dropFirst())
    p.standardOutput = FileHandle.standardOutput
    let pipe = Pipe()
    p.standardError = pipe
    let captured = CapturedOutput()
    let reader = Thread {
      let h = pipe.fileHandleForReading
      while true {
        let d = h.availableData
        if d.isEmpty { break }
        FileHandle.standardError.write(d)
        captured.append(d)
      }
      captured.finish()
    }
    do { try p.run() } catch {
      return (127, "cannot start \(command[0]): \(error)", nil)
    }
    reader.start()
    lock.lock()
    current = p
    let stopNow = stopRequested
    lock.unlock()
    if stopNow { stop() }
    var watch = job.flatMap {
      hangTimeout == 0 ? nil
        : HangWatch(job: $0, in: space, timeout: hangTimeout, startTimeout: startTimeout > 0 ? startTimeout : .infinity,
                    now: monotonicSeconds())
    }
    var hang: HangReport?
    var endedAt = 0.0
    while p.isRunning {
      usleep(UInt32(pollInterval * 1e6))
      if hang == nil, let h = watch?.check(now: monotonicSeconds()) {
        hang = h
        onEvent(.hung(incarnation: incarnation, report: h))
        end(p)
        endedAt = monotonicSeconds()
      } else if hang != nil && monotonicSeconds() - endedAt > Self.mpirunGrace {
        kill(p.processIdentifier, SIGKILL)
      }
    }
    p.waitUntilExit()
    try? pipe.fileHandleForWriting.close()
    captured.wait(timeout: 5)
    lock.lock()
    current = nil
    lock.unlock()
    let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    return (status, captured.text, hang)
  }

  private func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
  }
}

/// Bytes read from a child's stderr by a reader thread.
private final class CapturedOutput: @unchecked Sendable {
  private let lock = NSLock()
  private var data = Data()
  private let done = DispatchSemaphore(value: 0)

  func append(_ d: Data) { lock.lock(); data.append(d); lock.unlock() }
  func finish() { done.signal() }
  func wait(timeout: Double) { _ = done.wait(timeout: .now() + timeout) }
  var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
}

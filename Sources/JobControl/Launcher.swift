// Starting a job: mpirun in its own session (so Ctrl-C in the dashboard and closing the
// terminal do not reach the ranks), stdout/stderr into a log file.

import Foundation
import Telemetry

/// What `launch` needs to start a job.
public struct LaunchPlan: Sendable, Equatable {
  public var np: Int
  public var tp: Int
  public var dp: Int
  public var hostfile: String?
  /// mpirun's `--host` list (`host1:2,host2:2`), passed through as it is.
  public var hosts: String?
  public var job: String
  /// Arguments for tptrain after the ones the launcher adds.
  public var trainArguments: [String]
  /// With torchrun: the Python interpreter whose torch runs the job (`tptop launch --python`);
  /// nil: the active one (`Runner.torchrunLauncher`).
  public var python: String? = nil

  /// Creates a plan.
  public init(np: Int, tp: Int, dp: Int, hostfile: String?, hosts: String? = nil, job: String, trainArguments: [String]) {
    self.np = np
    self.tp = tp
    self.dp = dp
    self.hostfile = hostfile
    self.hosts = hosts
    self.job = job
    self.trainArguments = trainArguments
  }

  /// Resolves np/tp/dp from what was given: np defaults to tp × dp; tp to np / dp; dp to 1.
  /// - Throws: `LaunchError` with one line when the numbers do not fit together.
  public static func resolve(np: Int?, tp: Int?, dp: Int?) throws -> (np: Int, tp: Int, dp: Int) {
    for (n, v) in [("--np", np), ("--tp", tp), ("--dp", dp)] {
      if let v, v < 1 { throw LaunchError("\(n) must be at least 1 (got \(v))") }
    }
    if let np, let tp, dp == nil, np % tp != 0 {
      // no --dp would fit: say so instead of deriving one (np / tp rounds down, to 0 below tp)
      throw LaunchError("--tp \(tp) must divide --np \(np) (each data-parallel replica has --tp ranks); give --np a multiple of \(tp)")
    }
    if let np, let dp, tp == nil, np % dp != 0 {
      throw LaunchError("--dp \(dp) must divide --np \(np) (each data-parallel replica has --tp ranks); give --np a multiple of \(dp)")
    }
    let d = dp ?? (np != nil && tp != nil ? np! / max(1, tp!) : 1)
    let t = tp ?? (np ?? d) / max(1, d)
    let n = np ?? t * d
    guard t >= 1, d >= 1, t * d == n else {
      throw LaunchError("--np \(n) must equal --tp \(t) × --dp \(d)")
    }
    return (n, t, d)
  }

  /// mpirun's arguments that place the ranks on machines (`--hostfile`, `--host`), as given.
  public var placementArguments: [String] {
    (hostfile.map { ["--hostfile", $0] } ?? []) + (hosts.map { ["--host", $0] } ?? [])
  }

  /// The mpirun command line. `tptrain` is the engine's path; `root` and `cores` decide
  /// --allow-run-as-root and --oversubscribe.
  public func mpirunArguments(tptrain: String, root: Bool, cores: Int) -> [String] {
    var a = ["-np", String(np)]
    if root { a.append("--allow-run-as-root") }
    a += placementArguments
    if np > cores && placementArguments.isEmpty { a.append("--oversubscribe") }
    a += [tptrain, "--tp", String(tp), "--dp", String(dp), "--job", job]
    a += trainArguments
    return a
  }
}

extension LaunchPlan {
  /// The `tptop supervise` command line that runs this plan and relaunches it from its latest
  /// checkpoint up to `restarts` times when a rank dies (or the job hangs for `hangTimeout` s).
  public func superviseArguments(tptop: String, mpirun: String, tptrain: String, restarts: Int, cores: Int,
                                 hangTimeout: Double? = nil) -> [String] {
    var a = [tptop, "supervise", "--restart", String(restarts), "--np", String(np), "--mpirun", mpirun, "--tptrain", tptrain]
    if let h = hangTimeout { a += ["--hang-timeout", String(h)] }
    a += placementArguments.map { "--mpirun-arg=\($0)" }
    if np > cores && placementArguments.isEmpty { a.append("--mpirun-arg=--oversubscribe") }
    a += ["--", "--tp", String(tp), "--dp", String(dp), "--job", job] + trainArguments
    return a
  }
}

/// A job started by this process.
public final class LaunchedJob {
  /// mpirun's (or the supervising tptop's) pid.
  public let pid: pid_t
  /// The file receiving its stdout and stderr.
  public let logPath: String
  /// The telemetry job name.
  public let job: String
  /// The namespace its segment is looked for in.
  public let space: SegmentSpace
  private var status: Int32?

  init(pid: pid_t, logPath: String, job: String, space: SegmentSpace) {
    self.pid = pid
    self.logPath = logPath
    self.job = job
    self.space = space
  }

  /// mpirun's exit status once it has exited (reaps it), nil while it runs.
  public func exitStatus() -> Int32? {
    if let s = status { return s }
    var st: Int32 = 0
    let r = waitpid(pid, &st, WNOHANG)
    guard r == pid else { return nil }
    let code = st & 0x7F == 0 ? (st >> 8) & 0xFF : 128 + (st & 0x7F)
    status = code
    return code
  }
}

/// Why a job could not be started: one line for the user.
public struct LaunchError: Error, Sendable, CustomStringConvertible {
  /// One line describing the failure.
  public var description: String
  /// Creates an error with its message.
  public init(_ description: String) { self.description = description }
}

/// Where launched jobs' stdout/stderr logs live: $TPTOP_LOG_DIR, else $XDG_CACHE_HOME/tptop,
/// else ~/.cache/tptop, else $TMPDIR/tptop.
public enum LogFiles {
  /// The log directory (not created).
  public static var directory: String {
    let env = ProcessInfo.processInfo.environment
    if let d = env["TPTOP_LOG_DIR"], !d.isEmpty { return d }
    if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return x + "/tptop" }
    if let h = env["HOME"], !h.isEmpty, FileManager.default.isWritableFile(atPath: h) { return h + "/.cache/tptop" }
    return (env["TMPDIR"] ?? "/tmp") + "/tptop"
  }

  /// The log file of `job`.
  public static func path(job: String) -> String { directory + "/" + job + ".log" }
}

/// Starts jobs.
public enum Launcher {
  /// A fresh job name, e.g. "job-20261128-220501-4242".
  public static func newJobName() -> String { SegmentName.defaultJobName() }

  /// Throws when a segment named `job` exists, live or ended: the new job could not create it,
  /// the dashboard would attach to the old job instead, and its log would be overwritten.
  public static func checkNameFree(_ job: String, in space: SegmentSpace) throws {
    guard access(space.path(job: job), F_OK) == 0 else { return }
    let summary = JobDirectory.summary(job: job, in: space)
    if summary.isLive {
      throw LaunchError("job '\(job)' is already \(summary.stateWord): give another --job, or stop it first (tptop stop \(job))")
    }
    throw LaunchError("a job named '\(job)' already exists (\(summary.stateWord)): give another --job, or remove it with `tptop gc \(job)`")
  }

  /// Starts mpirun for `plan` in a new session with stdin from /dev/null and stdout/stderr
  /// appended to the job's log file.
  /// - Throws: `LaunchError` (one line) when mpirun or tptrain cannot be found or started.
  /// With `restarts` > 0 the job runs under `tptop supervise` (this executable), which
  /// relaunches it from its latest checkpoint when a rank dies.
  /// With `runner` other than mpirun, its command line (`Runner.command(for:)`) starts the job.
  /// `hangTimeout` goes to `tptop supervise --hang-timeout`.
  public static func start(_ plan: LaunchPlan, in space: SegmentSpace, restarts: Int = 0, runner: Runner = .mpirun,
                           hangTimeout: Double? = nil) throws -> LaunchedJob {
    try checkNameFree(plan.job, in: space)
    let runnerCommand = try runner.command(for: plan)
    let mpirun = runnerCommand != nil ? "" : Executables.find("mpirun", nextToSelf: false)
    let tptrain = runnerCommand != nil ? "" : Executables.find("tptrain")
    guard let mpirun else {
      throw LaunchError("mpirun not found on PATH: install Open MPI (apt-get install openmpi-bin)")
    }
    guard let tptrain else {
      throw LaunchError("tptrain not found next to tptop or on PATH: build it with `swift build --product tptrain`")
    }
    let logDir = LogFiles.directory
    do {
      try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
    } catch {
      throw LaunchError("cannot create the log directory \(logDir): \(error.localizedDescription)")
    }
    let logPath = LogFiles.path(job: plan.job)
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let program: String
    let args: [String]
    if let command = runnerCommand {
      (program, args) = (command[0], command)
    } else if restarts > 0 {
      program = Executables.currentExecutable
      args = plan.superviseArguments(tptop: program, mpirun: mpirun, tptrain: tptrain, restarts: restarts, cores: cores,
                                     hangTimeout: hangTimeout)
    } else {
      program = mpirun
      args = [mpirun] + plan.mpirunArguments(tptrain: tptrain, root: geteuid() == 0, cores: cores)
    }
    let header = "# tptop launch \(Date())\n# " + args.joined(separator: " ") + "\n"
    _ = FileManager.default.createFile(atPath: logPath, contents: header.data(using: .utf8))
    switch Spawn.start(program, args, outputPath: logPath, output: .append, newSession: true) {
    case .success(let pid): return LaunchedJob(pid: pid, logPath: logPath, job: plan.job, space: space)
    case .failure(let e): throw LaunchError("cannot start \(program): \(e)")
    }
  }
}

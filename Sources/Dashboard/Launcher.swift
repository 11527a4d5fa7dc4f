import Foundation
import Telemetry

// Starting a job: mpirun in its own session (so Ctrl-C in the dashboard and closing the
// terminal do not reach the ranks), stdout/stderr into a log file, and a wait for the segment.

/// What `launch` needs to start a job.
public struct LaunchPlan: Sendable, Equatable {
  public var np: Int
  public var tp: Int
  public var dp: Int
  public var hostfile: String?
  public var job: String
  /// Arguments for tptrain after the ones the launcher adds.
  public var trainArguments: [String]

  /// Creates a plan.
  public init(np: Int, tp: Int, dp: Int, hostfile: String?, job: String, trainArguments: [String]) {
    self.np = np
    self.tp = tp
    self.dp = dp
    self.hostfile = hostfile
    self.job = job
    self.trainArguments = trainArguments
  }

  /// Resolves np/tp/dp from what was given: np defaults to tp × dp; tp to np / dp; dp to 1.
  /// - Throws: `ControlError` with one line when the numbers do not fit together.
  public static func resolve(np: Int?, tp: Int?, dp: Int?) throws -> (np: Int, tp: Int, dp: Int) {
    for (n, v) in [("--np", np), ("--tp", tp), ("--dp", dp)] {
      if let v, v < 1 { throw ControlError("\(n) must be at least 1 (got \(v))") }
    }
    let d = dp ?? (np != nil && tp != nil ? np! / max(1, tp!) : 1)
    let t = tp ?? (np ?? d) / max(1, d)
    let n = np ?? t * d
    guard t >= 1, d >= 1, t * d == n else {
      throw ControlError("--np \(n) must equal --tp \(t) × --dp \(d)")
    }
    return (n, t, d)
  }

  /// The mpirun command line. `tptrain` is the engine's path; `root` and `cores` decide
  /// --allow-run-as-root and --oversubscribe.
  public func mpirunArguments(tptrain: String, root: Bool, cores: Int) -> [String] {
    var a = ["-np", String(np)]
    if root { a.append("--allow-run-as-root") }
    if let h = hostfile { a += ["--hostfile", h] }
    if np > cores && hostfile == nil { a.append("--oversubscribe") }
    a += [tptrain, "--tp", String(tp), "--dp", String(dp), "--job", job]
    a += trainArguments
    return a
  }
}

extension LaunchPlan {
  /// The `tptop supervise` command line that runs this plan and relaunches it from its latest
  /// checkpoint up to `restarts` times when a rank dies.
  public func superviseArguments(tptop: String, mpirun: String, tptrain: String, restarts: Int, cores: Int) -> [String] {
    var a = [tptop, "supervise", "--restart", String(restarts), "--np", String(np), "--mpirun", mpirun, "--tptrain", tptrain]
    if let h = hostfile { a += ["--mpirun-arg=--hostfile", "--mpirun-arg=\(h)"] }
    if np > cores && hostfile == nil { a.append("--mpirun-arg=--oversubscribe") }
    a += ["--", "--tp", String(tp), "--dp", String(dp), "--job", job] + trainArguments
    return a
  }
}

/// A job started by this process.
public final class LaunchedJob {
  public let pid: pid_t
  public let logPath: String
  public let job: String
  private var status: Int32?

  init(pid: pid_t, logPath: String, job: String) {
    self.pid = pid
    self.logPath = logPath
    self.job = job
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

  /// The last `n` lines of the log.
  public func logTail(_ n: Int = 15) -> String {
    let t = LogTail(path: logPath, capacity: n)
    t.update()
    return t.lines.suffix(n).joined(separator: "\n")
  }
}

/// Starts jobs.
public enum Launcher {
  /// Finds an executable: next to this process's executable, then on PATH.
  public static func findExecutable(_ name: String, nextToSelf: Bool = true) -> String? {
    if nextToSelf {
      let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
      let dir = URL(fileURLWithPath: selfPath).deletingLastPathComponent().path
      let p = dir + "/" + name
      if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
      let p = "\(dir)/\(name)"
      if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
  }

  /// A fresh job name, e.g. "job-20261128-220501-4242".
  public static func newJobName() -> String { SegmentName.defaultJobName() }

  /// Starts mpirun for `plan` in a new session with stdin from /dev/null and stdout/stderr
  /// appended to the job's log file.
  /// - Throws: `ControlError` (one line) when mpirun or tptrain cannot be found or started.
  /// With `restarts` > 0 the job runs under `tptop supervise` (this executable), which
  /// relaunches it from its latest checkpoint when a rank dies.
  /// With `runner` other than mpirun, its command line (`Runner.command(for:)`) starts the job.
  public static func start(_ plan: LaunchPlan, restarts: Int = 0, runner: Runner = .mpirun) throws -> LaunchedJob {
    let runnerCommand = try runner.command(for: plan)
    let mpirun = runnerCommand != nil ? "" : findExecutable("mpirun", nextToSelf: false)
    let tptrain = runnerCommand != nil ? "" : findExecutable("tptrain")
    guard let mpirun else {
      throw ControlError("mpirun not found on PATH: install Open MPI (apt-get install openmpi-bin)")
    }
    guard let tptrain else {
      throw ControlError("tptrain not found next to tptop or on PATH: build it with `swift build --product tptrain`")
    }
    let logDir = LogFiles.directory
    do {
      try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
    } catch {
      throw ControlError("cannot create the log directory \(logDir): \(error.localizedDescription)")
    }
    let logPath = LogFiles.path(job: plan.job)
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let program: String
    let args: [String]
    if let command = runnerCommand {
      (program, args) = (command[0], command)
    } else if restarts > 0 {
      program = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
      args = plan.superviseArguments(tptop: program, mpirun: mpirun, tptrain: tptrain, restarts: restarts, cores: cores)
    } else {
      program = mpirun
      args = [mpirun] + plan.mpirunArguments(tptrain: tptrain, root: geteuid() == 0, cores: cores)
    }
    let header = "# tptop launch \(Date())\n# " + args.joined(separator: " ") + "\n"
    _ = FileManager.default.createFile(atPath: logPath, contents: header.data(using: .utf8))

    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    // POSIX_SPAWN_SETSID (glibc ≥ 2.26, value 0x80; hidden behind _GNU_SOURCE in the header).
    posix_spawnattr_setflags(&attr, Int16(0x80))
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&fa, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&fa, 1, 2)
    let cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, program, &fa, &attr, cargs, environ)
    guard rc == 0 else {
      throw ControlError("cannot start \(program): \(String(cString: strerror(rc)))")
    }
    return LaunchedJob(pid: pid, logPath: logPath, job: plan.job)
  }

  /// Waits until the job's segment can be attached. Fails if mpirun exits first or `timeout`
  /// seconds pass.
  public static func waitForSegment(_ job: LaunchedJob, timeout: Double = 120,
                                    progress: (String) -> Void = { _ in }) throws -> TelemetrySource {
    let start = monotonicSeconds()
    var lastError = ""
    var announced = false
    while monotonicSeconds() - start < timeout {
      do {
        let s = try TelemetrySource(job: job.job, logPath: job.logPath)
        s.launcherStatus = { [job] in job.exitStatus() }
        return s
      } catch {
        lastError = "\(error)"
      }
      if let st = job.exitStatus() {
        throw ControlError("the job exited with status \(st) before publishing telemetry; log \(job.logPath):\n\(job.logTail())")
      }
      if !announced && monotonicSeconds() - start > 2 {
        progress("waiting for job \(job.job) to start (log: \(job.logPath))...")
        announced = true
      }
      sleepSeconds(0.1)
    }
    throw ControlError("job \(job.job) published no telemetry within \(Int(timeout)) s (\(lastError)); it is still running as pid \(job.pid); log: \(job.logPath)")
  }
}

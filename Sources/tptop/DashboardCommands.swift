import ArgumentParser
import Dashboard
import Foundation
import JobControl
import RunStore
import Telemetry

// The interactive dashboard commands: demo, launch, attach, the default (plain `tptop`), and the
// hidden dashboard benchmark. The dashboard itself lives in the Dashboard module.

/// The interactive dashboard commands (demo, launch, attach).
let dashboardSubcommands: [ParsableCommand.Type] = [Demo.self, Launch.self, Attach.self, Home.self]
let dashboardDefaultSubcommand: ParsableCommand.Type? = Home.self

/// Options every interactive command shares.
struct DisplayOptions: ParsableArguments {
  @Flag(help: "Disable every control key (p, c, S).")
  var readonly = false
  @Option(help: "Theme name (themes/NAME.theme) or path to a .theme file.")
  var theme: String?
  @Option(help: "Seconds between screen refreshes.")
  var refresh: Double = 1.0

  func validate() throws {
    guard refresh.isFinite, refresh >= 0.05, refresh <= 60 else {
      throw ValidationError("--refresh must be between 0.05 and 60 seconds (got \(refresh))")
    }
  }

  var options: DashboardOptions { DashboardOptions(refresh: refresh, readonly: readonly) }
}

private func printErr(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }

/// Attaches to `job` and runs the dashboard until the user detaches.
private func attach(job: String, in space: SegmentSpace, logPath: String?, display: DisplayOptions, launched: LaunchedJob? = nil) throws {
  // a job whose segment is gone opens from the run store (StoredSource.swift)
  if launched == nil, !space.allJobs().contains(job), StoreLocation.fromEnvironment().exists(run: job) {
    _ = DashboardSession.run(source: try openedSource(job), options: display.options, themeName: display.theme)
    return
  }
  let source: TelemetrySource
  do {
    let log = logPath ?? {
      let p = TelemetrySource.defaultLogPath(job: job)
      return FileManager.default.fileExists(atPath: p) ? p : nil
    }()
    source = try TelemetrySource(job: job, in: space, logPath: log)
  } catch {
    printErr("tptop: \(error)")
    throw ExitCode(1)
  }
  if let l = launched { source.launcherStatus = { l.exitStatus() } }
  // attached late, the rings no longer hold the first steps: the run store fills them in
  let shown: JobSource = JobRuns.live(job).map { BackfilledSource(live: source, run: $0) } ?? source
  _ = DashboardSession.run(source: shown, options: display.options, themeName: display.theme)
  // the incarnation the dashboard followed last (a supervised job restarts as <job>.r<k>)
  let name = source.currentJobName
  let summary = JobDirectory.summary(job: name, in: space)
  let exit = launched?.exitStatus()
  if let words = AttachChoice.keepsRunning(name: name, summary: summary, launcherExit: exit) {
    print(words)
    return
  }
  let phase = summary.phase
  guard phase == nil ? (exit ?? 0) == 0 : phase!.endedCleanly && (exit ?? 0) == 0 else {
    // failed below
    return try leaveFailed(name, summary: summary, launched: launched)
  }
  // the header's words: a job that ended before its last step was stopped
  let words = phase == .stopped ? "stopped at step \(summary.step) of \(summary.totalSteps)" : phase?.word.rawValue ?? "exited"
  print("left \(name) (the job has ended: \(words))")
}

/// The words for leaving a job that failed; exits 1.
private func leaveFailed(_ name: String, summary: JobSummary, launched: LaunchedJob?) throws {
  // the same words as the dashboard's header: mpirun's report names the rank that died first
  let report = launched.flatMap { try? String(contentsOfFile: $0.logPath, encoding: .utf8) }.flatMap(MPIFailureReport.parse)
  let rank = report?.rank ?? summary.failedRank
  print("left \(name) (the job has ended: failed\(rank.map { " (rank \($0))" } ?? ""))")
  throw ExitCode(1)
}

/// Starts `plan` and attaches to it.
private func launchAndAttach(_ plan: LaunchPlan, in space: SegmentSpace, display: DisplayOptions, restarts: Int = 0, runner: Runner = .mpirun,
                             hangTimeout: Double? = nil) throws {
  let launched: LaunchedJob
  do {
    launched = try Launcher.start(plan, in: space, restarts: restarts, runner: runner, hangTimeout: hangTimeout)
  } catch {
    printErr("tptop: \(error)")
    throw ExitCode(1)
  }
  print("started job \(plan.job) (\(runner.rawValue) pid \(launched.pid)); log: \(launched.logPath)")
  fflush(nil)
  do {
    _ = try Launcher.waitForSegment(launched) { printErr("tptop: " + $0) }
  } catch {
    printErr("tptop: \(error)")
    // the last line says what went wrong: tptrain's own error, not mpirun's report around it
    let log = (try? String(contentsOfFile: launched.logPath, encoding: .utf8)) ?? ""
    if let cause = log.split(separator: "\n").last(where: { $0.hasPrefix("tptrain: error") }) {
      printErr("tptop: job \(plan.job) did not start: \(cause)")
    }
    throw ExitCode(1)
  }
  try attach(job: plan.job, in: space, logPath: launched.logPath, display: display, launched: launched)
}

/// Live jobs, newest first.
private func liveJobs(in space: SegmentSpace) -> [JobSummary] { AttachChoice.attachable(JobDirectory.list(in: space)) }

struct Demo: SegmentCommand {
  static let configuration = CommandConfiguration(
    abstract: "Launch the demo job (small preset on the bundled Shakespeare corpus, TP=2) and attach.",
    discussion: "Runs: mpirun -np 2 tptrain --model small --data data/shakespeare.txt --tp 2 … --job NAME")

  @Option(help: "Training steps.") var steps: Int = 5000
  @Option(help: "Batch size.") var batch: Int = 4
  @Option(help: "Sequence length.") var seq: Int = 64
  @OptionGroup var display: DisplayOptions

  func validate() throws {
    guard steps >= 1, batch >= 1, seq >= 1 else { throw ValidationError("--steps, --batch and --seq must be at least 1") }
  }

  func run(in space: SegmentSpace) throws {
    try Launch.refuseNamespace(space)
    var args = ["--model", "small", "--batch", String(batch), "--seq", String(seq), "--steps", String(steps)]
    if let data = Demo.findCorpus() { args += ["--data", data] }
    let plan = LaunchPlan(np: 2, tp: 2, dp: 1, hostfile: nil, job: Launcher.newJobName(), trainArguments: args)
    try launchAndAttach(plan, in: space, display: display)
  }

  /// data/shakespeare.txt in the working directory or in the package that holds the binary.
  static func findCorpus() -> String? {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    let candidates = [
      FileManager.default.currentDirectoryPath + "/data/shakespeare.txt",
      dir.appendingPathComponent("../../data/shakespeare.txt").standardized.path,
      dir.appendingPathComponent("../../../data/shakespeare.txt").standardized.path,  // .build/<triple>/release
      dir.appendingPathComponent("../share/tptop/data/shakespeare.txt").standardized.path,
    ]
    return candidates.first { FileManager.default.isReadableFile(atPath: $0) }
  }
}

struct Launch: SegmentCommand {
  static let configuration = CommandConfiguration(
    abstract: "Start a training job with mpirun (or torchrun) and attach to it.",
    discussion: """
      Everything after -- goes to tptrain; tptop adds --tp, --dp and --job. The
      job's output goes to a log file shown in the Events view. Example:
        tptop launch --np 2 --tp 2 -- --model small --steps 500
      With --runner torchrun, what follows -- is a Python script and its arguments,
      started with torchrun on this machine; the script learns the job name from
      $TPTOP_JOB (and t, d from $TPTOP_TP, $TPTOP_DP). Example:
        tptop launch --runner torchrun --np 2 -- examples/torch_tp_gpt.py --tp 2
      """)

  @Option(help: "Number of MPI ranks (default tp × dp).") var np: Int?
  @Option(help: "Tensor-parallel size t.") var tp: Int?
  @Option(help: "Data-parallel size d.") var dp: Int?
  @Option(help: "mpirun hostfile (passed through as --hostfile FILE): ranks on several machines.") var hostfile: String?
  @Option(name: .customLong("host"), help: "mpirun host list (passed through as --host LIST), e.g. node1:2,node2:2.") var hosts: String?
  @Option(help: "Job name (default: job-<date>-<time>-<pid>).") var job: String?
  @Option(help: "When a rank dies, relaunch from the latest checkpoint up to K times (runs the job under `tptop supervise`; give tptrain --checkpoint-dir and --checkpoint-every).")
  var restart: Int = 0
  @Option(name: .customLong("hang-timeout"), help: "With --restart: seconds without step progress after which the job counts as hung and is restarted (default max(60, 20 × the median step time); 0: never).")
  var hangTimeout: Double?
  @Option(help: "What starts the ranks: mpirun (tptrain) or torchrun (a Python script given after --).")
  var runner: Runner = .mpirun
  @Option(help: ArgumentHelp(
    "With --runner torchrun: the Python interpreter to run the job with (PATH -m torch.distributed.run).",
    discussion: "Default: the torchrun of $VIRTUAL_ENV or $CONDA_PREFIX, else the one beside the first python3 on PATH."))
  var python: String?
  @OptionGroup var display: DisplayOptions
  @Argument(parsing: .postTerminator, help: "Arguments for tptrain, or the script and its arguments with --runner torchrun (after --).")
  var trainArguments: [String] = []

  func validate() throws {
    do { _ = try LaunchPlan.resolve(np: np, tp: tp, dp: dp) } catch { throw ValidationError("\(error)") }
    if let j = job, !SegmentName.isValid(j) {
      throw ValidationError("invalid --job '\(j)': use 1–63 characters from A-Z a-z 0-9 . _ -")
    }
    if runner == .torchrun { return try validateTorchrun() }
    if python != nil { throw ValidationError("--python is for --runner torchrun (mpirun runs tptrain)") }
    for flag in ["--tp", "--dp", "--job"] where trainArguments.contains(flag) {
      throw ValidationError("give \(flag) to tptop launch, not after --")
    }
    if let h = hostfile, !FileManager.default.isReadableFile(atPath: h) {
      throw ValidationError("--hostfile \(h): no such readable file")
    }
    if restart < 0 { throw ValidationError("--restart must be ≥ 0 (got \(restart))") }
    if let h = hangTimeout {
      if !(h >= 0 && h.isFinite) { throw ValidationError("--hang-timeout must be a non-negative number of seconds (got \(h))") }
      if restart == 0 { throw ValidationError("--hang-timeout needs --restart K (the supervisor ends and restarts a hung job)") }
    }
  }

  /// torchrun starts the script after -- on this machine; restarts and hostfiles are mpirun's.
  func validateTorchrun() throws {
    guard let script = trainArguments.first else {
      throw ValidationError("--runner torchrun needs the script after --, e.g. -- examples/torch_tp_gpt.py --tp 2")
    }
    guard FileManager.default.isReadableFile(atPath: script) else {
      throw ValidationError("--runner torchrun: no readable script '\(script)'")
    }
    if hostfile != nil || hosts != nil { throw ValidationError("--hostfile and --host are for --runner mpirun (torchrun starts ranks on this machine)") }
    if let p = python, !FileManager.default.isExecutableFile(atPath: p) {
      throw ValidationError("--python \(p): no such executable; give the interpreter's path, e.g. --python .venv/bin/python3")
    }
    if restart != 0 { throw ValidationError("--restart is for --runner mpirun") }
  }

  /// Jobs start in the default namespace: `--namespace` is for the commands that read them.
  static func refuseNamespace(_ space: SegmentSpace) throws {
    // one line and a usage error's status (thrown from run, a ValidationError would print the
    // root command's usage under it)
    if let ns = space.namespace {
      throw failure("--namespace \(ns): launch starts jobs in the default namespace (give --namespace to ls, attach, watch, ...)",
                    code: ExitCode.validationFailure.rawValue)
    }
  }

  func run(in space: SegmentSpace) throws {
    try Self.refuseNamespace(space)
    let (n, t, d) = try LaunchPlan.resolve(np: np, tp: tp, dp: dp)
    var plan = LaunchPlan(np: n, tp: t, dp: d, hostfile: hostfile, hosts: hosts, job: job ?? Launcher.newJobName(),
                          trainArguments: trainArguments)
    plan.python = python
    if restart > 0 && !trainArguments.contains("--checkpoint-every") {
      printErr("tptop: note: without --checkpoint-every a restarted job starts again from step 0")
    }
    try launchAndAttach(plan, in: space, display: display, restarts: restart, runner: runner, hangTimeout: hangTimeout)
  }
}

extension Runner: ExpressibleByArgument {}

struct Attach: SegmentCommand {
  static let configuration = CommandConfiguration(
    abstract: "Attach the dashboard to a running job (the most recent live job when none is named).")

  @Argument(help: "Job name (see `tptop ls`).") var job: String?
  @Option(name: .customLong("wait"), help: ArgumentHelp(
    "Seconds to wait for the job's segment to appear (a job still starting, e.g. importing torch).",
    discussion: "Default 10 when a job is named, 0 without one.", valueName: "SECONDS"))
  var waitSeconds: Double?
  @OptionGroup var display: DisplayOptions

  func validate() throws {
    if let w = waitSeconds, !(w >= 0 && w.isFinite) { throw ValidationError("--wait must be a non-negative number of seconds (got \(w))") }
    if let j = job, !SegmentName.isValid(j) { throw ValidationError(TelemetryError.invalidJobName(j).description) }
  }

  func run(in space: SegmentSpace) throws {
    var name = job
    // a name with no segment but a stored run opens that run at once (`attach` below); only a
    // name the store does not know is waited for
    if let j = job, space.allJobs().contains(j) || !StoreLocation.fromEnvironment().exists(run: j) {
      let wait = waitSeconds ?? 10
      if !SegmentWait.appeared(job: j, in: space, within: wait) {
        printErr("tptop: no job '\(j)' appeared within \(Int(wait.rounded())) s (tptop ls lists the jobs; --wait SECONDS waits longer)")
        throw ExitCode(1)
      }
    }
    if name == nil {
      guard let newest = liveJobs(in: space).first else {
        printErr("tptop: no live job to attach; start one with `tptop demo` or `tptop launch -- …`")
        throw ExitCode(1)
      }
      name = newest.name
    }
    try attach(job: name!, in: space, logPath: nil, display: display)
  }
}

struct Home: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "home",
    abstract: "Attach if exactly one job is live, otherwise pick from the job list.",
    shouldDisplay: false)

  @OptionGroup var display: DisplayOptions

  func run(in space: SegmentSpace) throws {
    let live = liveJobs(in: space)
    if live.count == 1 {
      try attach(job: live[0].name, in: space, logPath: nil, display: display)
      return
    }
    // this user's jobs, live ones first, newest first within each
    let picked = DashboardSession.pick(themeName: display.theme) {
      JobDirectory.list(in: space).filter(\.isMine)
        .sorted { (JobListRow.isLive($0) ? 0 : 1, $0.age) < (JobListRow.isLive($1) ? 0 : 1, $1.age) }
        .map(JobListRow.init)
    }
    guard let name = picked else { return }
    try attach(job: name, in: space, logPath: nil, display: display)
  }
}

/// Waiting for a job's segment by name (`tptop attach NAME --wait`).
enum SegmentWait {
  /// False when job `job`'s segment has not appeared (or not become ready) within `seconds`,
  /// polling every 50 ms; true as soon as it opens, or fails to open for another reason (which
  /// attaching then reports).
  static func appeared(job: String, in space: SegmentSpace, within seconds: Double) -> Bool {
    let deadline = monotonicSeconds() + seconds
    while true {
      do {
        _ = try JobReader(job: job, in: space, requireDescription: false)
        return true
      } catch TelemetryError.noSuchJob, TelemetryError.notReady, TelemetryError.truncated {
        // not there yet, or still being created
      } catch {
        return true
      }
      if monotonicSeconds() >= deadline { return false }
      usleep(50_000)
    }
  }
}

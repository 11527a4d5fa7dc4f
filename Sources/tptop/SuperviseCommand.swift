import ArgumentParser
import Foundation
import Glibc
import JobControl
import Telemetry

/// Signal recorded by `tptop supervise`'s handler (0 = none); polled by a watcher thread.
nonisolated(unsafe) private var supervisorSignal: Int32 = 0

/// `tptop supervise --restart K [--np N] -- <tptrain args>`: runs a training job without a
/// dashboard and restarts it from its latest checkpoint when a rank dies.
struct SuperviseCommand: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "supervise",
    abstract: "Run a tptrain job under mpirun; when a rank dies, report it and relaunch from the latest checkpoint.",
    discussion: """
      Everything after -- goes to tptrain. Give it a --checkpoint-dir and
      --checkpoint-every so a failure costs at most one interval of steps:
        tptop supervise --restart 2 --np 4 -- --model tiny --tp 4 --steps 500 \\
            --checkpoint-dir ck --checkpoint-every 50
      Each relaunch adds --resume <checkpoint-dir> (from scratch if none was written
      yet) and renames the telemetry job to <job>.r1, <job>.r2, ... SIGTERM or
      SIGINT to tptop asks the ranks to checkpoint and stop, and disables restarts.
      Exit status: 0 when the job finished or stopped cleanly, else the last
      incarnation's.
      """)

  @Option(help: "Relaunch at most K times after a rank failure.")
  var restart: Int = 1
  @Option(name: .customLong("hang-timeout"), help: "Seconds without step progress (outside checkpoint writes and pauses) after which the job counts as hung: its processes are ended and it restarts like a failed job. Default: max(60, 20 × the median step time); 0: never.")
  var hangTimeout: Double?
  @Option(name: .customLong("start-timeout"), help: "Seconds an incarnation may take to create its telemetry segment and attach a rank (mpirun stuck, a rank stopped as it starts); past it the incarnation counts as hung. 0: never.")
  var startTimeout: Double = HangWatch.defaultStartTimeout
  @Option(help: "Number of ranks (mpirun -np).")
  var np: Int = 1
  @Option(help: "The mpirun executable.")
  var mpirun: String = "mpirun"
  @Option(help: "The tptrain executable (default: the one next to tptop, else on PATH).")
  var tptrain: String?
  @Option(name: .customLong("mpirun-arg"), help: "An extra mpirun argument (repeatable), e.g. --mpirun-arg=--oversubscribe.")
  var mpirunArgs: [String] = []
  @Argument(parsing: .postTerminator, help: "tptrain arguments (after --).")
  var trainArguments: [String] = []

  func validate() throws {
    if restart < 0 { throw ValidationError("--restart must be ≥ 0 (got \(restart))") }
    if np < 1 { throw ValidationError("--np must be ≥ 1 (got \(np))") }
    if let h = hangTimeout, !(h >= 0 && h.isFinite) {
      throw ValidationError("--hang-timeout must be a non-negative number of seconds (got \(h))")
    }
    if !(startTimeout >= 0 && startTimeout.isFinite) {
      throw ValidationError("--start-timeout must be a non-negative number of seconds (got \(startTimeout))")
    }
  }

  func run(in space: SegmentSpace) throws {
    let train = tptrain ?? Executables.find("tptrain") ?? "tptrain"
    var mpi = [mpirun, "-np", "\(np)", "--bind-to", "none"]
    if geteuid() == 0 && ProcessInfo.processInfo.environment["OMPI_ALLOW_RUN_AS_ROOT"] == nil {
      mpi.append("--allow-run-as-root")
    }
    mpi += mpirunArgs
    let supervisor = JobSupervisor(mpirun: mpi, tptrain: train, arguments: trainArguments, restarts: restart, in: space)
    supervisor.hangTimeout = hangTimeout
    supervisor.startTimeout = startTimeout
    let checkpointDir = JobSupervisor.checkpointDirectory(trainArguments)
    supervisor.onEvent = { Self.report($0, checkpointDir: checkpointDir) }

    // SIGTERM/SIGINT: the handler records; a watcher asks the ranks to checkpoint and stop.
    for s in [SIGTERM, SIGINT] {
      var action = sigaction()
      action.__sigaction_handler.sa_handler = { sig in supervisorSignal = sig }
      sigemptyset(&action.sa_mask)
      sigaction(s, &action, nil)
    }
    let watcher = Thread {
      while supervisorSignal == 0 { usleep(50_000) }
      Self.say("received signal \(supervisorSignal): asking the ranks to checkpoint and stop")
      supervisor.stop()
    }
    watcher.start()
    let status = supervisor.run()
    if status != 0 { throw ExitCode(status) }
  }

  /// One line per supervisor event on stdout, prefixed `tptop supervise:`.
  static func report(_ e: SupervisorEvent, checkpointDir: String) {
    switch e {
    case .launched(let k, let command, let job):
      say("incarnation \(k)\(job.map { " (job \($0))" } ?? ""): \(command.joined(separator: " "))")
    case .failed(let k, let failure, let status):
      say("incarnation \(k) failed (mpirun exit \(status)): \(failure.description)")
    case .hung(let k, let hang):
      say("incarnation \(k) hung: \(hang.description); ending its processes")
    case .restarting(let k, let resume):
      say(JobSupervisor.restartLine(incarnation: k, resume: resume))
    case .nameTaken(let k, let name, let instead):
      say("incarnation \(k): job name \(name) is taken (not a leftover of this job); running as \(instead)")
    case .finished(let k, let status, let summary):
      say("incarnation \(k) \(summary) (exit \(status))")
    }
  }

  static func say(_ line: String) {
    FileHandle.standardOutput.write(Data(("tptop supervise: " + line + "\n").utf8))
  }
}

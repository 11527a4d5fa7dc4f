import CheckpointLayout
import Foundation
import JobControl
import JobSchema
import XCTest

/// The supervisor's argument and checkpoint rules, without running mpirun.
final class SupervisorTests: XCTestCase {
  var dir = ""

  override func setUpWithError() throws {
    dir = NSTemporaryDirectory() + "tptop-supervisor-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    addTeardownBlock { [dir] in try? FileManager.default.removeItem(atPath: dir) }
  }

  /// Creates DIR/name, with a manifest when `complete`.
  func makeCheckpoint(_ name: String, complete: Bool) throws {
    let path = dir + "/" + name
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    if complete { try Data("{}".utf8).write(to: URL(fileURLWithPath: path + "/" + Checkpoints.manifestFile)) }
  }

  func testFlagValues() {
    let args = ["--job", "a", "--steps", "5", "--job=b", "--quiet"]
    XCTAssertEqual(JobSupervisor.value(of: "--job", in: args), "b", "the last one wins")
    XCTAssertNil(JobSupervisor.value(of: "--resume", in: args))
    XCTAssertEqual(JobSupervisor.removing("--job", from: args), ["--steps", "5", "--quiet"])
  }

  func testJobNames() {
    XCTAssertEqual(JobSupervisor.jobName(base: "j", incarnation: 0), "j")
    XCTAssertEqual(JobSupervisor.jobName(base: "j", incarnation: 2), "j.r2")
  }

  func testCheckpointDirectoryFollowsTptrainsRule() throws {
    XCTAssertEqual(JobSupervisor.checkpointDirectory(["--steps", "5"]), Checkpoints.defaultDirectory)
    XCTAssertEqual(JobSupervisor.checkpointDirectory(["--checkpoint-dir", "ck", "--resume", "other"]), "ck")
    XCTAssertEqual(JobSupervisor.checkpointDirectory(["--resume", dir]), dir, "a directory of checkpoints")
    try makeCheckpoint("step_00000004", complete: true)
    XCTAssertEqual(JobSupervisor.checkpointDirectory(["--resume", dir + "/step_00000004"]), dir, "one named checkpoint")
  }

  func testArgumentsOfLaterIncarnations() {
    let base = ["--model", "tiny", "--job", "j", "--init-from", "m.bin", "--steps", "9"]
    XCTAssertEqual(JobSupervisor.arguments(base, incarnation: 0, job: "j", resume: nil),
                   ["--model", "tiny", "--init-from", "m.bin", "--steps", "9", "--job", "j"])
    XCTAssertEqual(JobSupervisor.arguments(base, incarnation: 1, job: "j.r1", resume: nil),
                   ["--model", "tiny", "--init-from", "m.bin", "--steps", "9", "--job", "j.r1"], "no checkpoint yet: from scratch")
    XCTAssertEqual(JobSupervisor.arguments(base, incarnation: 1, job: "j.r1", resume: "checkpoints"),
                   ["--model", "tiny", "--steps", "9", "--job", "j.r1", "--checkpoint-dir", "checkpoints", "--resume", "checkpoints"])
    XCTAssertEqual(JobSupervisor.arguments(base, incarnation: 2, job: nil, resume: "ck"),
                   ["--model", "tiny", "--job", "j", "--steps", "9", "--checkpoint-dir", "checkpoints", "--resume", "ck"])
  }

  func testLatestCheckpointNeedsAManifest() throws {
    XCTAssertNil(Checkpoints.latest(in: dir))
    try makeCheckpoint("step_00000008", complete: false)
    try makeCheckpoint(".tmp-step_00000012", complete: true)
    XCTAssertNil(Checkpoints.latest(in: dir), "an unfinished or temporary directory is no checkpoint")
    try makeCheckpoint("step_00000004", complete: true)
    try makeCheckpoint("step_00000006", complete: true)
    XCTAssertEqual(Checkpoints.latest(in: dir)?.step, 6)
    XCTAssertEqual(Checkpoints.latest(in: dir)?.path, dir + "/step_00000006")
  }

  func testChildrenOfAProcess() throws {
    let out = dir + "/out"
    guard case .success(let pid) = Spawn.start("/bin/sleep", ["/bin/sleep", "5"], outputPath: out, output: .truncate,
                                                newSession: false) else { return XCTFail("spawn failed") }
    defer { kill(pid, SIGKILL); var st: Int32 = 0; waitpid(pid, &st, 0) }
    XCTAssertTrue(ProcessTable.children(of: getpid()).contains(pid))
    XCTAssertEqual(ProcessTable.children(of: pid), [])
  }

  // MARK: Verdicts

  static let killed = """
    step 3
    --------------------------------------------------------------------------
    mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed).
    --------------------------------------------------------------------------
    """

  func testARankFailureRestartsUnlessAStopWasRequested() {
    XCTAssertEqual(JobSupervisor.verdict(status: 137, stderr: Self.killed, stopRequested: false, controlStop: false), .rankFailed)
    // a stop asked for through the control page is final, also when a rank then dies
    guard case .done(let status, let summary) = JobSupervisor.verdict(status: 137, stderr: Self.killed, stopRequested: false, controlStop: true) else {
      return XCTFail("restarted after a requested stop")
    }
    XCTAssertEqual(status, 137)
    XCTAssertTrue(summary.contains("a requested stop is final"), summary)
    XCTAssertEqual(JobSupervisor.verdict(status: 137, stderr: Self.killed, stopRequested: true, controlStop: false),
                   .done(status: 137, summary: "stopped on request"))
  }

  func testAHungJobRestartsUnlessAStopWasRequested() {
    // ranks killed for a hang may print anything (here: a setup-like error line); still a restart
    let killedMidStep = "tptrain: error: MPI_Sendrecv failed\n" + Self.killed
    XCTAssertEqual(JobSupervisor.verdict(status: 137, stderr: killedMidStep, stopRequested: false, controlStop: false, hung: true),
                   .rankFailed)
    guard case .done(137, let summary) = JobSupervisor.verdict(status: 137, stderr: Self.killed, stopRequested: false, controlStop: true, hung: true) else {
      return XCTFail("a hung job was restarted after a requested stop")
    }
    XCTAssertTrue(summary.contains("a requested stop is final"), summary)
    XCTAssertEqual(JobSupervisor.verdict(status: 137, stderr: Self.killed, stopRequested: true, controlStop: false, hung: true),
                   .done(status: 137, summary: "stopped on request"))
  }

  func testCleanEndsAndErrorsAreNotRestarted() {
    XCTAssertEqual(JobSupervisor.verdict(status: 0, stderr: "", stopRequested: false, controlStop: false),
                   .done(status: 0, summary: "finished"))
    // a stop the supervisor asked for, every rank finished after its checkpoint: success, whatever
    // mpirun's own status after the signal
    XCTAssertEqual(JobSupervisor.verdict(status: 1, stderr: "", stopRequested: true, controlStop: false, stoppedCleanly: true),
                   .done(status: 0, summary: "stopped on request after a checkpoint"))
    XCTAssertEqual(JobSupervisor.verdict(status: 1, stderr: "tptrain: SIGTERM received: stopped at step 4 after checkpoint ck",
                                         stopRequested: true, controlStop: false),
                   .done(status: 1, summary: "stopped on request"), "decided by the ranks' state, never by the words")
    guard case .done(3, let nonFinite) = JobSupervisor.verdict(status: 3, stderr: "tptrain: error: non-finite loss nan / gradient norm nan at step 2: stopped", stopRequested: false, controlStop: false) else {
      return XCTFail("a non-finite loss was restarted")
    }
    XCTAssertTrue(nonFinite.contains("non-finite"), nonFinite)
    // refused before training (a flag out of range, one that does not parse, a set-up error), or
    // an output that cannot be written: the same command would fail again
    for status in [TrainingExit.usage.rawValue, TrainingExit.setup.rawValue, TrainingExit.unparsedFlag] {
      XCTAssertEqual(JobSupervisor.verdict(status: status, stderr: "", stopRequested: false, controlStop: false),
                     .done(status: status, summary: "tptrain failed during setup; not restarting"))
    }
    XCTAssertEqual(JobSupervisor.verdict(status: 6, stderr: "", stopRequested: false, controlStop: false),
                   .done(status: 6, summary: "tptrain could not write an output; not restarting"))
    // a run-time failure restarts, whatever its words; so does a set-up status of a killed rank
    XCTAssertEqual(JobSupervisor.verdict(status: 1, stderr: "tptrain: error: --lr must be a finite number > 0, not -1",
                                         stopRequested: false, controlStop: false), .rankFailed)
    XCTAssertEqual(JobSupervisor.verdict(status: 5, stderr: Self.killed, stopRequested: false, controlStop: false), .rankFailed)
  }

  func testExecutableLookup() {
    XCTAssertEqual(Executables.resolve("/x/y"), "/x/y")
    XCTAssertEqual(Executables.resolve("sh"), Executables.find("sh", nextToSelf: false))
    XCTAssertNil(Executables.find("no-such-program-\(getpid())"))
  }

  func testHangTimeoutIsGenerousByDefaultAndTheReportNamesTheRank() {
    XCTAssertEqual(HangWatch.limit(timeout: nil, medianStepSeconds: nil), 60)
    XCTAssertEqual(HangWatch.limit(timeout: nil, medianStepSeconds: 0.5), 60)
    XCTAssertEqual(HangWatch.limit(timeout: nil, medianStepSeconds: 10), 200)
    XCTAssertEqual(HangWatch.limit(timeout: 3, medianStepSeconds: 10), 3)
    let r = HangReport(rank: 1, seconds: 3, waitingRanks: [0, 2], collective: nil, lastStep: 40)
    XCTAssertEqual(r.description, "rank 1 made no progress for 3 s (waiting ranks: 0, 2)")
    XCTAssertEqual(HangReport(rank: nil, seconds: 2.5, waitingRanks: [], collective: nil, lastStep: 0).description,
                   "the job made no progress for 2.5 s (no rank waiting in a collective)")
    let plan = LaunchPlan(np: 2, tp: 2, dp: 1, hostfile: nil, job: "j", trainArguments: [])
    let args = plan.superviseArguments(tptop: "tptop", mpirun: "mpirun", tptrain: "tptrain", restarts: 1, cores: 2,
                                       hangTimeout: 3)
    XCTAssertEqual(Array(args[args.firstIndex(of: "--hang-timeout")!...].prefix(2)), ["--hang-timeout", "3.0"])
  }
}

import CheckpointLayout
import Foundation
import JobControl
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

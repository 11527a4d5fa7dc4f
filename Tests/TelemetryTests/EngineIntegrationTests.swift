import Foundation
import Glibc
import JobSchema
import TestSupport
import XCTest

@testable import Telemetry

/// A real TP=2 training run under mpirun publishing into the segment, steered through the
/// control page. Skipped when mpirun or the tptrain executable is missing.
final class EngineIntegrationTests: XCTestCase {
  private var checkpointDir: URL!

  override func setUp() {
    checkpointDir = FileManager.default.temporaryDirectory.appendingPathComponent("tptop-telemetry-ck-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
  }

  override func tearDown() {
    try? FileManager.default.removeItem(at: checkpointDir)
  }

  private func tools() throws -> (mpirun: String, tptrain: String) {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    guard let mpirun = path.split(separator: ":").map({ "\($0)/mpirun" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
    else { throw MissingTool.error("mpirun (make test installs openmpi-bin)") }
    let tptrain = ToolPaths.buildDir.appendingPathComponent("tptrain").path
    guard FileManager.default.isExecutableFile(atPath: tptrain) else { throw MissingTool.error("the tptrain executable next to the tests (swift build --product tptrain)") }
    return (mpirun, tptrain)
  }

  /// Starts `mpirun -np 2 tptrain --model tiny --tp 2 ...` for job `job`.
  private func launch(_ job: String, steps: Int, ranks: Int = 2, extra: [String] = []) throws -> Process {
    let (mpirun, tptrain) = try tools()
    return try startTool(mpirun, [
      "--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", tptrain, "--model", "tiny", "--tp", "2", "--batch", "2", "--seq", "16",
      "--steps", "\(steps)", "--job", job, "--quiet", "--threads", "1", "--checkpoint-dir", checkpointDir.path,
    ] + extra)
  }

  private func waitExit(_ p: Process, timeout: Double = 60) -> Bool {
    eventually(timeout) { !p.isRunning }
  }

  func testEveryRankPublishesARecordEveryStep() throws {
    let job = uniqueJob("train")
    defer { removeJob(job) }
    let p = try launch(job, steps: 12)
    XCTAssertTrue(waitExit(p))
    XCTAssertEqual(p.terminationStatus, 0)
    let r = try JobReader(job: job, in: .default)
    XCTAssertEqual(r.phase(), .finished)
    XCTAssertEqual(r.info.worldSize, 2)
    XCTAssertEqual(r.info.tp, 2)
    XCTAssertEqual(r.info.dp, 1)
    XCTAssertEqual(r.info.totalSteps, 12)
    XCTAssertEqual(r.info.preset, "tiny")
    XCTAssertEqual(r.info.model.batch, 2)
    XCTAssertEqual(r.info.model.seq, 16)
    let qkv = try XCTUnwrap(r.info.shards.first { $0.name == "qkvw" })
    XCTAssertEqual(qkv.split, .column)
    XCTAssertEqual(qkv.ranks.count, 2)
    XCTAssertEqual(qkv.ranks[0].count, 3)
    XCTAssertFalse(qkv.rankDescriptions[0].isEmpty)
    let polls = r.poll()
    for p in polls {
      XCTAssertEqual(p.steps.map(\.step), Array(1...12), "rank \(p.rank)")
      XCTAssertEqual(p.lost, 0)
      for s in p.steps {
        XCTAssertEqual(s.rank, p.rank)
        XCTAssertEqual(s.tokens, 32)
        XCTAssertGreaterThan(s.stepNs, 0)
        XCTAssertGreaterThan(s.allReduceCount, 0)
        XCTAssertGreaterThan(s.paramBytes, 0)
        XCTAssertTrue(s.loss.isFinite)
      }
    }
    // Loss is global: identical on both ranks.
    XCTAssertEqual(polls[0].steps.map(\.loss), polls[1].steps.map(\.loss))
    for s in r.ranks() {
      XCTAssertTrue(s.attached)
      XCTAssertEqual(s.state, .finished)
      XCTAssertEqual(s.lastStep, 12)
      XCTAssertFalse(s.host.isEmpty)
    }
  }

  /// Starts an endless 2-rank job, attaches, and waits until every rank has passed `step`; the job
  /// is ended and its segment removed when the test ends.
  private func startEndlessJob(_ tag: String, pastStep step: Int, ranks: Int = 2, extra: [String] = []) throws -> (Process, JobReader) {
    let job = uniqueJob(tag)
    addTeardownBlock { removeJob(job) }
    let p = try launch(job, steps: 1_000_000, ranks: ranks, extra: extra)
    addTeardownBlock { if p.isRunning { p.terminate() } }
    let r = try XCTUnwrap(attachWhenReady(job, timeout: 60))
    XCTAssertTrue(eventually(60) { r.ranks().allSatisfy { $0.lastStep >= step } })
    return (p, r)
  }

  func testPauseResumeCheckpointAndStopThroughTheControlPage() throws {
    let (p, r) = try startEndlessJob("steer", pastStep: 3)

    // Pause: both ranks stop at the same step boundary.
    try r.request(.pause)
    XCTAssertTrue(eventually(20) { r.ranks().allSatisfy { $0.state == .paused && $0.ackedState == .pause } })
    var rs = r.ranks()
    XCTAssertEqual(rs[0].ackedStep, rs[1].ackedStep)
    XCTAssertEqual(rs[0].lastStep, rs[1].lastStep)
    let stepAtPause = rs[0].lastStep
    XCTAssertEqual(r.phase(), .paused)

    // Paused: no steps while time passes, and the heartbeats stay fresh (each rank beats every
    // 100 ms; a loaded host may delay one beat, so the check waits for fresh ones)
    usleep(500_000)
    rs = r.ranks()
    XCTAssertEqual(rs.map(\.lastStep), [stepAtPause, stepAtPause])
    XCTAssertTrue(eventually(10) { r.ranks().allSatisfy { ($0.heartbeatAge ?? 99) < 0.5 } },
                  "heartbeat ages \(r.ranks().map { $0.heartbeatAge ?? 99 }) s while paused")

    // Resume.
    let t0 = telemetryMonotonicNanos()
    try r.request(.run)
    XCTAssertTrue(eventually(20) { r.ranks().allSatisfy { $0.state == .running && $0.ackedState == .run } })
    let resumeMs = Double(telemetryMonotonicNanos() - t0) / 1e6
    print("resume acknowledged by every rank after \(String(format: "%.1f", resumeMs)) ms")
    XCTAssertTrue(eventually(20) { r.ranks().allSatisfy { $0.lastStep > stepAtPause } })

    // Checkpoint on request.
    try r.requestCheckpoint()
    XCTAssertTrue(eventually(60) { r.ranks().allSatisfy { $0.checkpointsSaved >= 1 } })

    // Stop: a clean end, before the last step.
    try r.request(.stop)
    XCTAssertTrue(waitExit(p))
    XCTAssertEqual(p.terminationStatus, 0)
    XCTAssertTrue(r.phase().endedCleanly, "\(r.phase())")
    r.seekToStart()
    let polls = r.poll()
    for p in polls {
      let kinds = p.events.map(\.kind)
      XCTAssertTrue(kinds.contains(.paused), "rank \(p.rank): \(kinds)")
      XCTAssertTrue(kinds.contains(.resumed), "rank \(p.rank): \(kinds)")
      XCTAssertTrue(kinds.contains(.checkpointSaved), "rank \(p.rank): \(kinds)")
      XCTAssertTrue(kinds.contains(.stopped), "rank \(p.rank): \(kinds)")
      let paused = p.events.first { $0.kind == .paused }
      XCTAssertEqual(paused?.step, stepAtPause)
    }
    XCTAssertEqual(polls[0].events.first { $0.kind == .stopped }?.step, polls[1].events.first { $0.kind == .stopped }?.step)
    XCTAssertFalse(polls[0].events.first { $0.kind == .checkpointSaved }?.text.isEmpty ?? true)
  }

  /// A stop through the control page is a clean end: with checkpointing on, the last step is
  /// checkpointed, as on SIGTERM.
  func testGracefulStopWritesAFinalCheckpoint() throws {
    let (p, r) = try startEndlessJob("stopck", pastStep: 3, extra: ["--checkpoint-every", "100000"])
    try r.request(.stop)
    XCTAssertTrue(waitExit(p))
    XCTAssertEqual(p.terminationStatus, 0)
    let stoppedAt = r.rankStatus(0).lastStep
    XCTAssertEqual(r.rankStatus(0).lastCheckpointStep, stoppedAt)
    let name = String(format: "step_%08d", stoppedAt)
    XCTAssertTrue(FileManager.default.fileExists(atPath: checkpointDir.appendingPathComponent(name + "/manifest.json").path),
                  "no checkpoint \(name) in \((try? FileManager.default.contentsOfDirectory(atPath: checkpointDir.path)) ?? [])")
  }

  /// The budget: a paused job sleeps, using at most 2 % of one core in total. Four ranks
  /// (t 2 × d 2) on one node: only local rank 0 ticks, the other three sleep on the segment's
  /// wake word, so the total does not grow with the ranks.
  func testPausedJobSleeps() throws {
    let (p, r) = try startEndlessJob("sleep", pastStep: 2, ranks: 4)
    try r.request(.pause)
    XCTAssertTrue(eventually(20) { r.ranks().allSatisfy { $0.state == .paused } })
    // the ranks settle (rank 0's recorder may still be storing the last steps on a loaded host):
    // some 5-second window while the job stays paused must be under the budget
    let pids = r.ranks().map(\.pid)
    let (met, quietest) = CPUShare.settles(pids, under: 0.02, window: 5, timeout: 60) {
      r.ranks().allSatisfy { $0.state == .paused }
    }
    print("paused job CPU: \(quietest.map(String.init(describing:)) ?? "no paused window")")
    XCTAssertTrue(met, "a paused job must sleep (≤ 2 % CPU for the whole job); quietest window: \(quietest.map(String.init(describing:)) ?? "none")")
    // the sleeping ranks still beat (at least every 100 ms)
    let ages = r.ranks().map { $0.heartbeatAge ?? .infinity }
    XCTAssertTrue(ages.allSatisfy { $0 < 1 }, "heartbeat ages \(ages) s")
    try r.request(.run)
    XCTAssertTrue(eventually(20) { r.ranks().allSatisfy { $0.state == .running && $0.ackedState == .run } })
    try r.request(.stop)
    guard waitExit(p) else { return XCTFail("the job did not stop") }
    XCTAssertEqual(p.terminationStatus, 0)
  }

  /// A SIGTERM that reaches only a rank asleep on its node while paused still stops the whole
  /// job cleanly, with a checkpoint of the paused step.
  func testSignalToASleepingPausedRankStopsTheJob() throws {
    let (p, r) = try startEndlessJob("sigpause", pastStep: 2, ranks: 4, extra: ["--checkpoint-every", "100000"])
    try r.request(.pause)
    XCTAssertTrue(eventually(20) { r.ranks().allSatisfy { $0.state == .paused } })
    let rs = r.ranks()
    let sleeper = try XCTUnwrap(rs.first { $0.localRank == 3 })
    XCTAssertEqual(kill(sleeper.pid, SIGTERM), 0)
    guard waitExit(p, timeout: 30) else { return XCTFail("the job did not stop after a sleeping rank's SIGTERM") }
    XCTAssertEqual(p.terminationStatus, 0)
    let pausedAt = rs[0].lastStep
    XCTAssertEqual(r.rankStatus(0).lastCheckpointStep, pausedAt)
    XCTAssertEqual(r.rankStatus(0).lastStep, pausedAt, "no step ran after the pause")
  }
}

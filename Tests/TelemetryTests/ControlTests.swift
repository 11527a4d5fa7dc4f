import Foundation
import Glibc
import JobSchema
import TestSupport
import XCTest
import TelemetryFixtures

@testable import Telemetry

/// The control page in-process, and the command-line readers against a synthetic job process
/// that obeys the control page like tptrain does.
final class ControlTests: XCTestCase {
  func testDesiredStateCompareAndSwap() throws {
    let job = uniqueJob("cas")
    defer { removeJob(job) }
    let w = try SegmentWriter.create(smallDescription(job), in: .default, slotCount: 16)
    let ranks = try (0..<2).map { try w.rankWriter(worldRank: $0) }
    for r in ranks { r.setState(.running) }
    let a = try JobReader(job: job, in: .default), b = try JobReader(job: job, in: .default)
    XCTAssertEqual(a.control().desired, .run)
    XCTAssertEqual(try a.request(.pause), .run)
    XCTAssertEqual(b.control().desired, .pause)
    XCTAssertEqual(try b.request(.run), .pause)
    XCTAssertEqual(try b.request(.stop), .run)
    XCTAssertThrowsError(try a.request(.run)) { e in
      guard case .controlRefused(let msg) = e as? TelemetryError else { return XCTFail("\(e)") }
      XCTAssertTrue(msg.contains("stopping"))
    }
    XCTAssertThrowsError(try a.request(.pause))
    XCTAssertEqual(try a.request(.stop), .stop)
    // The job side sees it.
    XCTAssertEqual(w.pollControl().desired, .stop)
    XCTAssertEqual(a.control().observedDesired, .stop)
    // A finished job takes no commands.
    for r in ranks { r.setState(.finished) }
    XCTAssertThrowsError(try a.requestCheckpoint())
  }

  func testConcurrentCheckpointRequestsAreAllCounted() throws {
    let job = uniqueJob("ckpt")
    defer { removeJob(job) }
    let w = try SegmentWriter.create(smallDescription(job), in: .default, slotCount: 16)
    for r in 0..<2 { try w.rankWriter(worldRank: r).setState(.running) }
    let threads = 4, each = 2000
    let group = DispatchGroup()
    let failures = Locked(0)
    for _ in 0..<threads {
      group.enter()
      Thread {
        if let r = try? JobReader(job: job, in: .default) {
          for _ in 0..<each where (try? r.requestCheckpoint()) == nil { failures.with { $0 += 1 } }
        } else {
          failures.with { $0 += 1 }
        }
        group.leave()
      }.start()
    }
    group.wait()
    XCTAssertEqual(failures.with { $0 }, 0)
    XCTAssertEqual(w.pollControl().checkpointRequests, UInt64(threads * each))
  }

  /// The rank headers as the reader turns them into the phase's evidence (the phase itself:
  /// JobPhaseTests).
  func testLivenessJudgement() {
    func rank(_ s: RunState?, alive: Bool = true, age: Double = 0.1, attached: Bool = true) -> RankStatus {
      RankStatus(
        rank: 1, attached: attached, pid: 1, host: "h", localRank: 0, heartbeatAge: age, state: s, writeIndex: 0,
        lastStep: 0, ackedState: .run, ackedStep: 0, checkpointsSaved: 0, lastCheckpointStep: 0, pidAlive: alive)
    }
    func judge(_ rs: [RankStatus], creator: Bool = true) -> JobPhase {
      var e = PhaseEvidence(ranks: rs.map(\.phaseEvidence))
      e.creatorAlive = creator
      return JobPhase.judge(e)
    }
    XCTAssertEqual(judge([rank(.running), rank(.running)]), .running)
    XCTAssertEqual(judge([rank(.paused), rank(.paused)]), .paused)
    XCTAssertEqual(judge([rank(.finished), rank(.finished, alive: false, age: 100)]), .finished)
    XCTAssertEqual(judge([rank(.running), rank(.failed)]), .failed(rank: 1))
    // A rank whose process vanished without finishing: the job failed (one word everywhere).
    XCTAssertEqual(judge([rank(.running), rank(.running, alive: false, age: 10)]), .failed(rank: 1))
    // Old heartbeat but the process lives (e.g. a very long step): not stale.
    XCTAssertEqual(judge([rank(.running, alive: true, age: 100)]), .running)
    // Process gone but heartbeat fresh: not yet stale.
    XCTAssertEqual(judge([rank(.running, alive: false, age: 1)]), .running)
    XCTAssertEqual(judge([rank(nil, attached: false)], creator: true), .starting)
    XCTAssertEqual(judge([rank(nil, attached: false)], creator: false), .stale)
    XCTAssertEqual(judge([rank(.checkpointing), rank(.running)]), .checkpointing)
  }


  private func tool() throws -> String {
    guard let t = ToolPaths.debug else { throw MissingTool.error("the tptop executable next to the tests (swift build --product tptop)") }
    return t
  }

  /// Starts the synthetic job process for `job`: 2 ranks, t=2, a step every 5 ms, obeying the
  /// control page.
  private func startSynthetic(_ tool: String, _ job: String) throws -> Process {
    try startTool(ToolPaths.dev(beside: tool), ["synthetic-job", "--job", job, "--ranks", "2", "--tp", "2", "--steps", "100000", "--step-ms", "5"])
  }

  /// Overwrites `count` bytes of job `job`'s segment at `offset` with 0xFF.
  private func damage(_ job: String, offset: Int, count: Int) throws {
    let fd = open("/dev/shm/tptop." + job, O_RDWR)
    guard fd >= 0 else { throw TelemetryError.system(call: "open", job: job, errno: errno) }
    defer { close(fd) }
    let junk = [UInt8](repeating: 0xFF, count: count)
    XCTAssertEqual(junk.withUnsafeBytes { pwrite(fd, $0.baseAddress, count, off_t(offset)) }, count)
  }

  /// A running synthetic job whose segment then gets `count` bytes of 0xFF at `offset`; the job
  /// is ended and its segment removed at teardown.
  private func damagedJob(_ tag: String, offset: Int, count: Int) throws -> (tool: String, job: String, process: Process) {
    let tool = try tool()
    let job = uniqueJob(tag)
    let proc = try startSynthetic(tool, job)
    addTeardownBlock {
      if proc.isRunning { proc.terminate() }
      removeJob(job)
    }
    XCTAssertTrue(eventually { (attachWhenReady(job)?.rankStatus(1).lastStep ?? 0) >= 3 })
    try damage(job, offset: offset, count: count)
    return (tool, job, proc)
  }

  func testAZombieCountsAsGone() throws {
    // a child that has exited but is not reaped yet: kill(pid, 0) still finds it
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
    defer { free(argv[0]) }
    XCTAssertEqual(posix_spawn(&pid, "/bin/true", nil, nil, argv, environ), 0)
    XCTAssertTrue(eventually { processState(pid) == "Z" })
    XCTAssertEqual(kill(pid, 0), 0)
    XCTAssertFalse(processAlive(pid))
    var status: Int32 = 0
    XCTAssertEqual(waitpid(pid, &status, 0), pid)
    XCTAssertFalse(processAlive(pid))
    XCTAssertTrue(processAlive(getpid()))
    XCTAssertEqual(processState(getpid()), "R")
  }

  func testDamagedDescriptionStillTakesStopAndIsCollectedOnceGone() throws {
    // the shard table (the job description after the header) is garbage: new readers refuse it
    let (tool, job, proc) = try damagedJob("damaged", offset: SegmentLayout.Header.size, count: 256)
    XCTAssertThrowsError(try JobReader(job: job, in: .default))
    // but stop needs only the header and the control page
    let stop = try runTool(tool, ["stop", job])
    XCTAssertEqual(stop.status, 0, stop.stderr)
    XCTAssertTrue(eventually { !proc.isRunning })
    let gc = try runTool(tool, ["gc", job])
    XCTAssertTrue(gc.stdout.contains("removed /dev/shm/tptop.\(job)"), gc.stdout)
  }

  func testCorruptHeaderIsCollectedWhenNoProcessMapsIt() throws {
    let (tool, job, proc) = try damagedJob("corrupt", offset: SegmentLayout.Header.worldSize, count: 4)
    XCTAssertThrowsError(try JobReader(job: job, in: .default, requireDescription: false))
    // its writer still maps it: kept
    XCTAssertFalse(try runTool(tool, ["gc", job]).stdout.contains("removed"))
    kill(proc.processIdentifier, SIGKILL)
    proc.waitUntilExit()
    XCTAssertTrue(try runTool(tool, ["gc", job]).stdout.contains("removed /dev/shm/tptop.\(job)"))
  }

  func testPauseResumeCheckpointStopFromTheCommandLine() throws {
    let tool = try tool()
    let job = uniqueJob("ctl")
    defer { removeJob(job) }
    let proc = try startTool(ToolPaths.dev(beside: tool), ["synthetic-job", "--job", job, "--ranks", "2", "--tp", "2", "--steps", "100000", "--step-ms", "5"])
    defer { if proc.isRunning { proc.terminate() } }
    let reader = try XCTUnwrap(attachWhenReady(job))
    XCTAssertTrue(eventually { reader.rankStatus(1).lastStep >= 3 })

    let paused = try runTool(tool, ["pause", job])
    XCTAssertEqual(paused.status, 0, paused.stderr)
    XCTAssertTrue(paused.stdout.hasPrefix("job \(job) paused at step "), paused.stdout)
    let rs = reader.ranks()
    XCTAssertEqual(rs.map(\.state), [.paused, .paused])
    XCTAssertEqual(rs.map(\.ackedState), [.pause, .pause])
    XCTAssertEqual(rs[0].ackedStep, rs[1].ackedStep, "both ranks pause at the same step")
    XCTAssertEqual(rs[0].lastStep, rs[1].lastStep)
    XCTAssertEqual(reader.phase(), .paused)
    let stepAtPause = rs[0].lastStep
    usleep(300_000)
    XCTAssertEqual(reader.rankStatus(0).lastStep, stepAtPause, "a paused job makes no steps")
    XCTAssertLessThan(reader.rankStatus(1).heartbeatAge ?? 99, 1, "a paused job keeps its heartbeat")

    let again = try runTool(tool, ["pause", job])
    XCTAssertEqual(again.status, 0, again.stderr)
    XCTAssertEqual(again.stdout, "job \(job) paused at step \(stepAtPause) (it had been asked to pause already)\n")

    let resumed = try runTool(tool, ["resume", job])
    XCTAssertEqual(resumed.status, 0, resumed.stderr)
    XCTAssertEqual(resumed.stdout, "job \(job) resumed at step \(stepAtPause)\n")
    XCTAssertTrue(eventually { reader.rankStatus(0).lastStep > stepAtPause })
    XCTAssertEqual(reader.phase(), .running)
    let idle = try runTool(tool, ["resume", job])
    XCTAssertEqual(idle.status, 0, idle.stderr)
    XCTAssertTrue(idle.stdout.hasSuffix("(it was not asked to pause: nothing to resume)\n"), idle.stdout)

    let ck = try runTool(tool, ["checkpoint", job])
    XCTAssertEqual(ck.status, 0, ck.stderr)
    XCTAssertTrue(ck.stdout.contains("saved a checkpoint at step"), ck.stdout)
    XCTAssertEqual(reader.rankStatus(1).checkpointsSaved, 1)

    let stopped = try runTool(tool, ["stop", job])
    XCTAssertEqual(stopped.status, 0, stopped.stderr)
    XCTAssertTrue(stopped.stdout.contains("stopped at step"), stopped.stdout)
    proc.waitUntilExit()
    XCTAssertEqual(proc.terminationStatus, 0)
    XCTAssertEqual(reader.phase(), .stopped, "stopped before its 100000 steps")
    let ls = try runTool(tool, ["ls"])
    let row = try XCTUnwrap(ls.stdout.split(separator: "\n").first { $0.hasPrefix(job + " ") }, ls.stdout)
    // one word for the state: the STATE column says stopped (not finished with a note)
    XCTAssertEqual(row.split(separator: " ", omittingEmptySubsequences: true)[1], "stopped", String(row))
    // watch on the ended job: its newest records are the stop events, the last line names the step
    let lastStep = reader.rankStatus(0).lastStep
    let watched = try runTool(tool, ["watch", job])
    XCTAssertEqual(watched.status, 0, watched.stderr)
    XCTAssertEqual(watched.stdout.split(separator: "\n").last.map(String.init),
                   "job \(job) stopped at step \(lastStep) of 100000", watched.stdout)
    let events = reader.poll().flatMap(\.events).map(\.kind)
    for k in [EventKind.paused, .resumed, .checkpointSaved, .stopped] {
      XCTAssertEqual(events.filter { $0 == k }.count, 2, "\(k) on both ranks")
    }

    // A finished job refuses commands with one line and a non-zero status.
    let late = try runTool(tool, ["pause", job])
    XCTAssertNotEqual(late.status, 0)
    XCTAssertTrue(late.stderr.hasPrefix("tptop: job '\(job)' is stopped; it takes no more commands"), late.stderr)
    XCTAssertEqual(late.stderr.split(separator: "\n").count, 1)
  }

  func testWatchPrintsOneLinePerStepAndEndsWithTheJob() throws {
    let tool = try tool()
    let job = uniqueJob("watch")
    defer { removeJob(job) }
    let proc = try startTool(ToolPaths.dev(beside: tool), ["synthetic-job", "--job", job, "--ranks", "4", "--tp", "2", "--steps", "25", "--step-ms", "20"])
    _ = try XCTUnwrap(attachWhenReady(job))
    let watch = try runTool(tool, ["watch", job, "--from-start", "--interval-ms", "20"])
    proc.waitUntilExit()
    XCTAssertEqual(watch.status, 0, watch.stderr)
    let lines = watch.stdout.split(separator: "\n").map(String.init)
    let stepLines = lines.filter { $0.hasPrefix("step ") }
    XCTAssertEqual(stepLines.count, 25, watch.stdout)
    for (k, l) in stepLines.enumerated() {
      XCTAssertTrue(l.hasPrefix("step \(k + 1)/25  loss "), l)
      XCTAssertTrue(l.contains("tok/s "), l)
      XCTAssertTrue(l.contains("slowest r"), l)
      XCTAssertTrue(l.contains("allreduce max "), l)
      XCTAssertNotNil(l.range(of: #"  exposed max \d+\.\d ms r\d+  hidden \d+\.\d ms"#, options: .regularExpression), l)
      XCTAssertFalse(l.contains("ranks)"), "every rank reported: \(l)")
    }
    XCTAssertEqual(lines.last, "job \(job) finished at step 25")
    // the exposed and hidden figures against the records themselves (JSON lines export)
    let export = try runTool(tool, ["export", job, "--format", "jsonl"])
    XCTAssertEqual(export.status, 0, export.stderr)
    let steps = export.stdout.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }.filter { $0["type"] as? String == "step" && $0["step"] as? Int == 10 }
    XCTAssertEqual(steps.count, 4)
    let exposed = steps.map { ($0["comm_ns"] as! Int, $0["rank"] as! Int) }.max { $0.0 < $1.0 }!
    let hidden = steps.map { ($0["allreduce_total_ns"] as! Int) - min($0["comm_ns"] as! Int, $0["allreduce_total_ns"] as! Int) }.max()!
    XCTAssertTrue(stepLines[9].hasSuffix(String(format: "  exposed max %.1f ms r%d  hidden %.1f ms", Double(exposed.0) / 1e6, exposed.1, Double(hidden) / 1e6)), stepLines[9])
    // the learning rate and the gradient norm rank 0 recorded at that step
    let r0 = try XCTUnwrap(steps.first { $0["rank"] as? Int == 0 })
    let lr = try XCTUnwrap(r0["lr"] as? Double), gnorm = try XCTUnwrap(r0["grad_norm"] as? Double)
    XCTAssertGreaterThan(lr, 0)
    XCTAssertTrue(stepLines[9].contains(String(format: "  lr %.2e  gnorm %.4g  tok/s ", Float(lr), Float(gnorm))), stepLines[9])
  }

  func testListExportAndGarbageCollection() throws {
    let tool = try tool()
    let job = uniqueJob("export")
    defer { removeJob(job) }
    let proc = try startTool(ToolPaths.dev(beside: tool), ["synthetic-job", "--job", job, "--ranks", "2", "--tp", "1", "--steps", "12", "--step-ms", "1"])
    proc.waitUntilExit()
    XCTAssertEqual(proc.terminationStatus, 0)

    let ls = try runTool(tool, ["ls"])
    XCTAssertEqual(ls.status, 0)
    let row = try XCTUnwrap(ls.stdout.split(separator: "\n").first { $0.hasPrefix(job + " ") }, ls.stdout)
    XCTAssertTrue(row.contains("finished"), String(row))
    XCTAssertTrue(row.contains("t1×d2"), String(row))
    XCTAssertTrue(row.contains("12/12"), String(row))
    XCTAssertFalse(row.contains("stopped"), "ran to its last step: \(row)")
    XCTAssertTrue(ls.stdout.hasPrefix("NAME"), ls.stdout)

    let jsonl = try runTool(tool, ["export", job, "--format", "jsonl"])
    XCTAssertEqual(jsonl.status, 0, jsonl.stderr)
    let objects = try jsonl.stdout.split(separator: "\n").map { line in
      try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
    }
    XCTAssertEqual(objects.count, 24)
    XCTAssertEqual(objects.filter { $0["rank"] as? Int == 1 }.count, 12)
    let last = try XCTUnwrap(objects.last)
    XCTAssertEqual(last["type"] as? String, "step")
    XCTAssertEqual(last["step"] as? Int, 12)
    XCTAssertEqual((last["allreduce_hist"] as? [Int])?.count, 16)
    let expected = SyntheticJob.plausibleRecord(step: 12, rank: 1, model: ModelShape(
      layers: 4, heads: 4, channels: 64, vocab: 50257, paddedVocab: 50304, maxSeq: 256, batch: 4, seq: 64))
    XCTAssertEqual(last["step_ns"] as? Int, Int(expected.stepNs))
    XCTAssertEqual((last["loss"] as? Double).map { Float($0) }, expected.loss)

    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tptop-export-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let csvPath = dir.appendingPathComponent("out.csv").path
    let csv = try runTool(tool, ["export", job, "--format", "csv", "--output", csvPath])
    XCTAssertEqual(csv.status, 0, csv.stderr)
    let rows = try String(contentsOfFile: csvPath, encoding: .utf8).split(separator: "\n")
    XCTAssertEqual(rows.count, 25)
    XCTAssertEqual(String(rows[0]), TelemetryExport.csvHeader)
    // a step's JSON fields are all CSV columns (the histogram as allreduce_hist_0…15)
    for key in last.keys where key != "allreduce_hist" {
      XCTAssertTrue(TelemetryExport.csvColumns.contains(key), "JSON field \(key) has no CSV column")
    }
    for r in rows { XCTAssertEqual(r.split(separator: ",", omittingEmptySubsequences: false).count, TelemetryExport.csvColumns.count) }
    XCTAssertTrue(rows[1].hasPrefix("step,0,0,1,"), String(rows[1]))

    let bad = try runTool(tool, ["export", job, "--format", "xml"])
    XCTAssertNotEqual(bad.status, 0)
    XCTAssertTrue(bad.stderr.contains("--format must be jsonl, csv or tfevents, not 'xml'"), bad.stderr)

    // The job's process is gone and it finished: gc removes it.
    // (Limited to this test's job: other people's finished jobs on this machine stay.)
    let dry = try runTool(tool, ["gc", "--dry-run", job])
    XCTAssertTrue(dry.stdout.contains("would remove /dev/shm/tptop.\(job)"), dry.stdout)
    XCTAssertNoThrow(try JobReader(job: job, in: .default))
    let gc = try runTool(tool, ["gc", job])
    XCTAssertEqual(gc.status, 0)
    XCTAssertTrue(gc.stdout.contains("removed /dev/shm/tptop.\(job)"), gc.stdout)
    XCTAssertThrowsError(try JobReader(job: job, in: .default))
  }

  func testKilledJobIsFailedAndCollected() throws {
    let tool = try tool()
    let job = uniqueJob("stale")
    defer { removeJob(job) }
    let proc = try startTool(ToolPaths.dev(beside: tool), ["synthetic-job", "--job", job, "--ranks", "2", "--tp", "2", "--steps", "100000", "--step-ms", "5"])
    let reader = try XCTUnwrap(attachWhenReady(job))
    kill(proc.processIdentifier, SIGKILL)
    proc.waitUntilExit()
    reader.staleAfter = 0.2
    XCTAssertTrue(eventually(5) { reader.phase().word == .failed })
    let ls = try runTool(tool, ["ls", "--stale-after", "0.2"])
    XCTAssertTrue(ls.stdout.split(separator: "\n").contains { $0.hasPrefix(job + " ") && $0.contains("failed") && $0.contains("rank") }, ls.stdout)
    let gc = try runTool(tool, ["gc", "--stale-after", "0.2", job])
    XCTAssertTrue(gc.stdout.contains("removed /dev/shm/tptop.\(job)"), gc.stdout)
  }

  /// A segment whose creator died before making it ready is "being created" for a moment,
  /// then abandoned: ls and attach say so, and gc removes it. A truncated one is removed too.
  func testAbandonedAndTruncatedSegmentsAreNamedAndCollected() throws {
    let tool = try tool()
    let fresh = uniqueJob("creating"), old = uniqueJob("abandoned"), cut = uniqueJob("cut")
    defer { for j in [fresh, old, cut] { removeJob(j) } }
    try writeRawSegment(job: fresh, bytes: [])
    try writeRawSegment(job: old, bytes: [])
    // created a minute ago and never made ready
    var times = [timespec(tv_sec: time(nil) - 60, tv_nsec: 0), timespec(tv_sec: time(nil) - 60, tv_nsec: 0)]
    XCTAssertEqual(utimensat(AT_FDCWD, "/dev/shm/tptop." + old, &times, 0), 0)
    let (_, valid) = try readValid()
    try writeRawSegment(job: cut, bytes: Array(valid.prefix(valid.count / 2)))

    XCTAssertThrowsError(try JobReader(job: fresh, in: .default)) { XCTAssertEqual($0 as? TelemetryError, .notReady(fresh)) }
    XCTAssertThrowsError(try JobReader(job: old, in: .default)) { e in
      guard case .abandoned(old, let s)? = e as? TelemetryError else { return XCTFail("\(e)") }
      XCTAssertGreaterThanOrEqual(s, 59)
    }
    let attach = try runTool(tool, ["watch", old])
    XCTAssertNotEqual(attach.status, 0)
    XCTAssertEqual(attach.stderr.split(separator: "\n").count, 1, attach.stderr)
    XCTAssertTrue(attach.stderr.contains("never completed") && attach.stderr.contains("tptop gc"), attach.stderr)

    let gc = try runTool(tool, ["gc", fresh, old, cut])
    XCTAssertEqual(gc.status, 0)
    XCTAssertTrue(gc.stdout.contains("removed /dev/shm/tptop.\(old)"), gc.stdout)
    XCTAssertTrue(gc.stdout.contains("removed /dev/shm/tptop.\(cut)"), gc.stdout)
    XCTAssertFalse(gc.stdout.contains(fresh), "a segment being created right now stays: \(gc.stdout)")
    XCTAssertThrowsError(try JobReader(job: fresh, in: .default)) { XCTAssertEqual($0 as? TelemetryError, .notReady(fresh)) }
    XCTAssertThrowsError(try JobReader(job: old, in: .default)) { XCTAssertEqual($0 as? TelemetryError, .noSuchJob(old)) }
    XCTAssertThrowsError(try JobReader(job: cut, in: .default)) { XCTAssertEqual($0 as? TelemetryError, .noSuchJob(cut)) }
  }

  /// A complete segment's bytes.
  private func readValid() throws -> (String, [UInt8]) {
    let job = uniqueJob("whole")
    defer { removeJob(job) }
    _ = try SegmentWriter.create(smallDescription(job), in: .default, slotCount: 16)
    return (job, try readRawSegment(job: job))
  }

  func testUnknownJobIsOneClearLine() throws {
    let tool = try tool()
    for cmd in [["watch", "nope-\(getpid())"], ["pause", "nope-\(getpid())"], ["export", "nope-\(getpid())", "--format", "csv"]] {
      let r = try runTool(tool, cmd)
      XCTAssertNotEqual(r.status, 0)
      XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
      XCTAssertTrue(r.stderr.contains("no job"), r.stderr)
    }
    let bad = try runTool(tool, ["pause", "bad/name"])
    XCTAssertNotEqual(bad.status, 0)
    XCTAssertTrue(bad.stderr.contains("invalid job name"), bad.stderr)
  }
}

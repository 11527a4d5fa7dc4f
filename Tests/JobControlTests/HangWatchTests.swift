import Foundation
import JobControl
import JobSchema
import Telemetry
import XCTest
import TelemetryFixtures

/// The supervisor's hang watch on segments built in-process: the clock it keeps while a job is
/// paused, and the deadline for an incarnation that never starts.
final class HangWatchTests: XCTestCase {
  func uniqueJob(_ tag: String) -> String { "flt-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

  /// Issue 25, item 3: a rank stopped while the job is paused beats no more; the watch no longer
  /// counts that as an idle pause and reports the hang `timeout` after it was seen.
  func testARankStoppedWhilePausedIsAHang() throws {
    let job = uniqueJob("paused")
    let synthetic = try SyntheticJob(job: job, worldSize: 2, tp: 2)
    defer { try? SegmentWriter.remove(job: job, in: .default) }
    let ranks = synthetic.rankWriters
    for r in ranks { r.setState(.paused); r.heartbeat() }
    var watch = HangWatch(job: job, in: .default, timeout: 3, startTimeout: 100, now: 0)
    for t in stride(from: 0.0, through: 20, by: 1) {
      for r in ranks { r.heartbeat() }
      XCTAssertNil(watch.check(now: t), "a paused job whose ranks beat is idle, not hung (t = \(t))")
    }
    // rank 1 stopped 30 s ago; rank 0 (the node leader) still ticks
    ranks[1].heartbeat(nowNs: telemetryMonotonicNanos() - 30_000_000_000)
    ranks[0].heartbeat()
    XCTAssertNil(watch.check(now: 21), "the timeout runs from the last healthy check")
    let report = try XCTUnwrap(watch.check(now: 24), "3 s later: hung")
    XCTAssertEqual(report.rank, 1)
    XCTAssertFalse(report.neverStarted)
  }

  /// During a checkpoint write every rank of a tptrain job beats: a writer from a helper thread,
  /// its peers as they wait. While they all beat, a write gets the checkpoint floor (a slow disk);
  /// a rank that went silent (stopped before it began to write, or stopped while writing: a
  /// stopped process runs no thread) is a hang at the step timeout, and the report names it.
  func testASilentRankIsAHangDuringACheckpointWhetherOrNotItWrites() throws {
    let job = uniqueJob("ckpt")
    let synthetic = try SyntheticJob(job: job, worldSize: 2, tp: 2)
    defer { try? SegmentWriter.remove(job: job, in: .default) }
    let ranks = synthetic.rankWriters
    synthetic.advance(steps: 3)
    let stale = telemetryMonotonicNanos() - 30_000_000_000

    // both ranks writing and beating: the checkpoint floor, and no more
    var writing = HangWatch(job: job, in: .default, timeout: 3, startTimeout: 100, now: 0)
    for r in ranks { r.setState(.checkpointing); r.heartbeat() }
    XCTAssertNil(writing.check(now: 0))
    for t in stride(from: 1.0, through: 30, by: 1) {
      for r in ranks { r.heartbeat() }
      XCTAssertNil(writing.check(now: t), "a write whose ranks beat gets the checkpoint floor (t = \(t))")
    }
    for r in ranks { r.heartbeat() }
    XCTAssertNotNil(writing.check(now: HangWatch.checkpointFloor + 1), "…and no more")

    // rank 0 writes (then waits, beating); rank 1 never began: silent in state running
    var stuck = HangWatch(job: job, in: .default, timeout: 3, startTimeout: 100, now: 0)
    ranks[0].setState(.checkpointing); ranks[0].heartbeat()
    ranks[1].setState(.running); ranks[1].heartbeat(nowNs: stale)
    XCTAssertNil(stuck.check(now: 0))
    ranks[0].heartbeat()
    XCTAssertEqual(try XCTUnwrap(stuck.check(now: 3), "the step timeout, not the checkpoint floor").rank, 1)

    // both write; rank 1 stopped while writing: its heartbeat stops with its every thread
    var stopped = HangWatch(job: job, in: .default, timeout: 3, startTimeout: 100, now: 0)
    for r in ranks { r.setState(.checkpointing); r.heartbeat() }
    XCTAssertNil(stopped.check(now: 0))
    ranks[0].heartbeat(); ranks[1].heartbeat(nowNs: stale)
    XCTAssertNil(stopped.check(now: 2.9))
    let report = try XCTUnwrap(stopped.check(now: 3), "a silent writer is stopped: the step timeout")
    XCTAssertEqual(report.rank, 1)
    XCTAssertEqual(report.seconds, 3)
  }

  /// Issue 25, item 4: no segment (mpirun stuck, rank 0 stopped before it creates it) past the
  /// start timeout is a hang; so is a segment no rank attached to.
  func testAnIncarnationThatNeverStartsTimesOut() throws {
    var none = HangWatch(job: uniqueJob("never"), in: .default, timeout: 3, startTimeout: 10, now: 100)
    XCTAssertNil(none.check(now: 105))
    XCTAssertNil(none.check(now: 109.9))
    let r = try XCTUnwrap(none.check(now: 110), "no segment 10 s after the launch")
    XCTAssertTrue(r.neverStarted)
    XCTAssertEqual(r.description, "the job did not start within 10 s (no rank attached to its telemetry segment)")

    let job = uniqueJob("unattached")
    let d = JobDescription(
      name: job, model: ModelShape(layers: 1, heads: 2, channels: 64, vocab: 64, paddedVocab: 64, maxSeq: 8, batch: 1, seq: 8),
      preset: "tiny", worldSize: 2, tp: 2, dp: 1, totalSteps: 5,
      shards: ShardedTensor.gpt2Layout(ModelShape(layers: 1, heads: 2, channels: 64, vocab: 64, paddedVocab: 64, maxSeq: 8, batch: 1, seq: 8), tp: 2))
    let segment = try SegmentWriter.create(d, in: .default, slotCount: 16)
    defer { try? SegmentWriter.remove(job: job, in: .default) }
    var unattached = HangWatch(job: job, in: .default, timeout: 3, startTimeout: 10, now: 0)
    XCTAssertNil(unattached.check(now: 5))
    XCTAssertEqual(unattached.check(now: 10)?.neverStarted, true)
    // once a rank attached, the step timeout applies from then on
    var attached = HangWatch(job: job, in: .default, timeout: 3, startTimeout: 10, now: 0)
    let w = try segment.rankWriter(worldRank: 0)
    w.setState(.running)
    XCTAssertNil(attached.check(now: 8))
    XCTAssertNil(attached.check(now: 10.5))
    XCTAssertEqual(attached.check(now: 11)?.neverStarted, false)
  }

  /// Issue 25, item 4, end to end: an "mpirun" that never starts anything is ended after
  /// `startTimeout` and counts as a hang, so the restarts are used instead of waiting forever.
  func testTheSupervisorEndsAnIncarnationThatNeverStarts() throws {
    let job = uniqueJob("stuck")
    // sh -c 'sleep 600' stands in for an mpirun hung before it starts tptrain
    let sup = JobSupervisor(mpirun: ["/bin/sh", "-c", "exec sleep 600"], tptrain: "tptrain",
                            arguments: ["--job", job, "--steps", "5"], restarts: 1, in: .default)
    sup.startTimeout = 1
    sup.pollInterval = 0.02
    let events = EventLog()
    sup.onEvent = { events.append($0) }
    let started = Date()
    let status = sup.run()
    XCTAssertLessThan(Date().timeIntervalSince(started), 60, "ended, not waited on")
    XCTAssertNotEqual(status, 0)
    let hangs = events.all.compactMap { e -> HangReport? in if case .hung(_, let r) = e { return r } else { return nil } }
    XCTAssertEqual(hangs.count, 2, "both incarnations timed out")
    XCTAssertTrue(hangs.allSatisfy(\.neverStarted))
    XCTAssertTrue(events.all.contains { if case .finished(1, _, let s) = $0 { return s == "out of restarts (1)" } else { return false } })
  }
}

private final class EventLog: @unchecked Sendable {
  private let lock = NSLock()
  private var events: [SupervisorEvent] = []
  func append(_ e: SupervisorEvent) { lock.lock(); events.append(e); lock.unlock() }
  var all: [SupervisorEvent] { lock.lock(); defer { lock.unlock() }; return events }
}

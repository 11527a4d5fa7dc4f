import Glibc
import JobSchema
import XCTest
import TelemetryFixtures

@testable import Telemetry

/// The stall judgement: which rank a job is stuck on, from the ranks' headers.
final class StallTests: XCTestCase {
  private func rank(_ r: Int, age: Double, waiting: CollectiveWait? = nil, state: RunState = .running,
                    attached: Bool = true) -> RankStatus {
    RankStatus(
      rank: r, attached: attached, pid: 1, host: "h", localRank: r, heartbeatAge: age, state: state, writeIndex: 0,
      lastStep: 130, ackedState: .run, ackedStep: 130, checkpointsSaved: 0, lastCheckpointStep: 0, pidAlive: true,
      waiting: waiting)
  }

  private let allReduce5 = CollectiveWait(kind: .allReduce, ordinal: 5, step: 131, seconds: 12)

  func testTheSilentRankIsNamedWhileTheOthersWaitForIt() {
    let ranks = [rank(0, age: 0.01, waiting: allReduce5), rank(1, age: 12.4), rank(2, age: 0.002, waiting: allReduce5),
                 rank(3, age: 0.003, waiting: allReduce5)]
    let d = StallDiagnosis.judge(ranks, threshold: 5)
    XCTAssertEqual(d?.rank, 1)
    XCTAssertEqual(d?.waitingRanks, [0, 2, 3])
    XCTAssertEqual(d?.description, "rank 1: no progress for 12 s; ranks 0, 2, 3 waiting for it in all-reduce #5 of step 131")
    // a rank stopped inside a collective has published it but beats no more: still the stalled one
    let inside = [rank(0, age: 0.01, waiting: allReduce5), rank(1, age: 9, waiting: allReduce5)]
    XCTAssertEqual(StallDiagnosis.judge(inside, threshold: 5)?.rank, 1)
    XCTAssertEqual(StallDiagnosis.judge(inside, threshold: 5)?.description,
                   "rank 1: no progress for 9 s; rank 0 waiting for it in all-reduce #5 of step 131")
    // of several silent ranks, the one silent longest
    let two = [rank(0, age: 0.01, waiting: allReduce5), rank(1, age: 7), rank(2, age: 30), rank(3, age: 6)]
    XCTAssertEqual(StallDiagnosis.judge(two, threshold: 5)?.rank, 2)
  }

  func testNoStallWithoutWaitersOrWithFreshHeartbeats() {
    // every rank computing (a long step): nobody waits, nothing to name
    XCTAssertNil(StallDiagnosis.judge([rank(0, age: 20), rank(1, age: 20)], threshold: 5))
    // waiting, but the peer beat recently: an ordinary imbalance
    XCTAssertNil(StallDiagnosis.judge([rank(0, age: 0.01, waiting: allReduce5), rank(1, age: 2)], threshold: 5))
    // a waiting rank whose own heartbeat is old is not "waiting" (it stopped too)
    XCTAssertNil(StallDiagnosis.judge([rank(0, age: 8, waiting: allReduce5), rank(1, age: 9)], threshold: 5))
    // a checkpoint write beats no heartbeat: never judged stalled
    XCTAssertNil(StallDiagnosis.judge(
      [rank(0, age: 0.01, waiting: allReduce5), rank(1, age: 30, state: .checkpointing)], threshold: 5))
    // finished, failed and unattached ranks are out of the judgement
    XCTAssertNil(StallDiagnosis.judge(
      [rank(0, age: 0.01, waiting: allReduce5), rank(1, age: 30, state: .finished)], threshold: 5))
    XCTAssertNil(StallDiagnosis.judge(
      [rank(0, age: 0.01, waiting: allReduce5), rank(1, age: 30, attached: false)], threshold: 5))
  }

  /// Issue 25, item 5: heartbeats are the ranks' own, so a job whose ranks all stopped beating is
  /// stalled although nobody waits, and so is a rank stopped while the others are paused.
  func testAFrozenJobIsStalledWithoutWaiters() {
    let frozen = [rank(0, age: 12), rank(1, age: 12.5)]
    XCTAssertNil(StallDiagnosis.judge(frozen, threshold: 5), "without the frozen rule: only waiters name a rank")
    let d = StallDiagnosis.judge(frozen, threshold: 5, frozenThreshold: 5)
    XCTAssertEqual(d?.rank, 1)
    XCTAssertEqual(d?.waitingRanks, [])
    XCTAssertEqual(d?.description, "rank 1: no heartbeat for 12 s (every rank silent: the job is frozen)")
    // rank 0 stopped while paused; the others, asleep, still beat
    let pausedLeader = [rank(0, age: 9, state: .paused), rank(1, age: 0.05, state: .paused)]
    XCTAssertEqual(StallDiagnosis.judge(pausedLeader, threshold: 5, frozenThreshold: 5)?.description,
                   "rank 0: no heartbeat for 9 s (the other ranks still beat)")
    // a long step below the limit, a rank still starting, a checkpoint write: not stalled
    XCTAssertNil(StallDiagnosis.judge([rank(0, age: 20), rank(1, age: 20)], threshold: 5, frozenThreshold: 60))
    XCTAssertNil(StallDiagnosis.judge([rank(0, age: 20, state: .starting)], threshold: 5, frozenThreshold: 5))
    XCTAssertNil(StallDiagnosis.judge([rank(0, age: 20, state: .checkpointing), rank(1, age: 20)], threshold: 5,
                                      frozenThreshold: 5))
  }

  /// Issue 25, item 5, through a segment: every rank's heartbeat old → `ls`'s summary and
  /// `stallDiagnosis` say stalled, not running; before any step the first-step allowance applies.
  func testReadersCallAJobWithOnlyOldHeartbeatsStalled() throws {
    let job = uniqueJob("frozen")
    defer { removeJob(job) }
    let w = try SegmentWriter.create(smallDescription(job), in: .default)
    let ranks = try (0..<2).map { try w.rankWriter(worldRank: $0) }
    for r in ranks { r.setState(.running) }
    let reader = try JobReader(job: job, in: .default)
    let old = telemetryMonotonicNanos() - 30_000_000_000
    for r in ranks { r.heartbeat(nowNs: old) }
    XCTAssertNil(reader.stallDiagnosis(), "30 s before the first step is within the first-step allowance")
    for (i, r) in ranks.enumerated() {
      r.writeStep(SyntheticJob.plausibleRecord(step: 1, rank: i, model: w.info.model))
      r.heartbeat(nowNs: old)
    }
    let d = try XCTUnwrap(reader.stallDiagnosis(), "every heartbeat 30 s old after a timed step")
    XCTAssertEqual(d.waitingRanks, [])
    XCTAssertEqual(reader.summary().phase?.word, .stalled, "one phase: stalled, not the ranks' own running")
    XCTAssertNotNil(reader.summary().stall, "ls prints STATE stalled")
  }

  func testThresholdFollowsTheMedianStepTime() {
    XCTAssertEqual(StallDiagnosis.threshold(medianStepSeconds: nil), 5)
    XCTAssertEqual(StallDiagnosis.threshold(medianStepSeconds: 0.03), 5)
    XCTAssertEqual(StallDiagnosis.threshold(medianStepSeconds: 2), 20)
    XCTAssertEqual(StallDiagnosis.threshold(medianStepSeconds: 0.1, floor: 8), 8)
  }

  /// The wait words go through the segment: the writer's stores, the reader's decoding, and the
  /// reader's judgement (`stallDiagnosis`, `summary().stall`, which ls, watch and the dashboard use).
  func testWaitWordsRoundTripAndTheReaderNamesTheStalledRank() throws {
    let job = uniqueJob("stall")
    defer { removeJob(job) }
    let seg = try SegmentWriter.create(smallDescription(job), in: .default, slotCount: 16)
    let w0 = try seg.rankWriter(worldRank: 0, localRank: 0)
    let w1 = try seg.rankWriter(worldRank: 1, localRank: 1)
    w0.setState(.running)
    w1.setState(.running)
    let reader = try JobReader(job: job, in: .default)
    XCTAssertNil(reader.rankStatus(0).waiting)
    XCTAssertNil(reader.stallDiagnosis())

    let now = telemetryMonotonicNanos()
    w0.enterCollective(kind: CollectiveWait.Kind.allReduce.rawValue, ordinal: 5, step: 131, nowNs: now - 12_000_000_000)
    w0.heartbeat(nowNs: now)
    w1.heartbeat(nowNs: now - 12_000_000_000)
    let waiting = try XCTUnwrap(reader.rankStatus(0).waiting)
    XCTAssertEqual(waiting.kind, .allReduce)
    XCTAssertEqual(waiting.ordinal, 5)
    XCTAssertEqual(waiting.step, 131)
    XCTAssertEqual(waiting.seconds, 12, accuracy: 1)
    XCTAssertNil(reader.rankStatus(1).waiting)
    let d = try XCTUnwrap(reader.stallDiagnosis())
    XCTAssertEqual(d.rank, 1)
    XCTAssertEqual(d.waitingRanks, [0])
    XCTAssertTrue(d.description.hasPrefix("rank 1: no progress for 1"), d.description)
    XCTAssertTrue(d.description.hasSuffix("rank 0 waiting for it in all-reduce #5 of step 131"), d.description)
    XCTAssertEqual(reader.summary().stall?.rank, 1)

    w0.leaveCollective()
    XCTAssertNil(reader.rankStatus(0).waiting)
    XCTAssertNil(reader.stallDiagnosis(), "nobody waits any more")
  }
}

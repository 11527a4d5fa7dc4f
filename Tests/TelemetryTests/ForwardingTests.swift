import Glibc
import JobSchema
import XCTest

@testable import Telemetry

/// Forwarding without MPI: a rank's writer on "node 1" fills messages that world rank 0's
/// process applies to that rank's ring in "node 0"'s segment (both segments in this process).
final class ForwardingTests: XCTestCase {
  private func segments(slots: Int) throws -> (node0: SegmentWriter, node1: SegmentWriter, job0: String, job1: String) {
    let job0 = uniqueJob("fwd0"), job1 = uniqueJob("fwd1")
    addTeardownBlock { removeJob(job0); removeJob(job1) }
    return (try SegmentWriter.create(smallDescription(job0), in: .default, slotCount: slots),
            try SegmentWriter.create(smallDescription(job1), in: .default, slotCount: slots), job0, job1)
  }

  private func metrics(step: Int) -> StepMetrics {
    var m = StepMetrics()
    m.step = step
    m.loss = Float(step) / 4
    m.stepNs = UInt64(1000 + step)
    return m
  }

  func testAForwardedRankShowsItsRecordsHeaderAndPidOnNodeZero() throws {
    let (node0, node1, job0, _) = try segments(slots: 64)
    let source = try node1.rankWriter(worldRank: 1, localRank: 0, nodeIndex: 1)
    let forwarder = RecordForwarder(capacity: 8)
    source.forwarder = forwarder
    let kept = try node0.forwardedRankWriter(worldRank: 1)
    let reader = try JobReader(job: job0, in: .default)
    XCTAssertFalse(reader.rankStatus(1).attached, "nothing claimed before the first message")

    let t0 = telemetryMonotonicNanos()
    for s in 1...3 { source.writeStep(metrics(step: s), timestampNs: t0 - 1_000_000 * UInt64(4 - s)) }
    source.writeEvent(.paused, step: 3)
    source.setState(.paused)
    source.acknowledge(.pause, step: 3)
    let message = forwarder.seal(source, relay: ControlRelay(desired: .pause, checkpoints: 2))
    XCTAssertEqual(message.count, ForwardMessage.size(records: 4))
    let receivedAt = t0 + 5_000_000_000
    let (relay, final) = kept.applyForwarded(message, nowNs: receivedAt)
    XCTAssertEqual(relay, ControlRelay(desired: .pause, checkpoints: 2))
    XCTAssertFalse(final)

    let h = reader.rankStatus(1)
    XCTAssertTrue(h.attached)
    XCTAssertTrue(h.forwarded)
    XCTAssertEqual(h.node, 1)
    XCTAssertEqual(h.pid, getpid())
    XCTAssertEqual(h.state, .paused)
    XCTAssertEqual(h.ackedState, .pause)
    XCTAssertEqual(h.ackedStep, 3)
    XCTAssertEqual(h.lastStep, 3)
    XCTAssertEqual(h.writeIndex, 4)
    XCTAssertEqual(h.sourceRecords, 4)
    XCTAssertEqual(h.forwardedRecords, 4)
    XCTAssertEqual(h.neverForwarded, 0)
    XCTAssertTrue(h.pidAlive, "the forwarder (this process) lives")
    let poll = reader.poll(rank: 1)
    XCTAssertEqual(poll.steps.map(\.metrics), (1...3).map(metrics))
    XCTAssertEqual(poll.events.map(\.kind), [.paused])
    XCTAssertEqual(poll.corrupt, 0)
    // timestamps keep their distance before the seal, measured on the receiver's clock
    let sealed = message.baseAddress!.load(fromByteOffset: ForwardMessage.sealedNs, as: UInt64.self)
    for (s, rec) in zip(1...3, poll.steps) {
      XCTAssertEqual(rec.timestampNs, receivedAt - (sealed - (t0 - 1_000_000 * UInt64(4 - s))))
    }

    // the relay lands on node 0's control page as a reader's request would
    node0.relayControl(relay!)
    XCTAssertEqual(reader.control().desired, .pause)
    XCTAssertEqual(reader.control().checkpointRequests, 2)
    node0.relayControl(ControlRelay(desired: .stop, checkpoints: 0))
    node0.relayControl(ControlRelay(desired: .run, checkpoints: 0))
    XCTAssertEqual(reader.control().desired, .stop, "stop stays final")
  }

  /// Lossless accounting: records dropped before forwarding and records lost to ring overrun are
  /// told apart, and with the accepted ones they add up to what the rank published.
  func testNeverForwardedAndOverwrittenRecordsAreCountedApart() throws {
    let (node0, node1, job0, _) = try segments(slots: 16)
    let source = try node1.rankWriter(worldRank: 1, nodeIndex: 1)
    let forwarder = RecordForwarder(capacity: 8)
    source.forwarder = forwarder
    let kept = try node0.forwardedRankWriter(worldRank: 1)
    let reader = try JobReader(job: job0, in: .default)
    var published = 0
    // 40 records in 4 messages of 8 each (8 more per round dropped: the send had not completed)
    for round in 0..<4 {
      for i in 0..<16 {
        source.writeStep(metrics(step: round * 16 + i + 1), timestampNs: telemetryMonotonicNanos())
        published += 1
      }
      _ = kept.applyForwarded(forwarder.seal(source), nowNs: telemetryMonotonicNanos())
    }
    XCTAssertEqual(forwarder.dropped, 32)
    let h = reader.rankStatus(1)
    XCTAssertEqual(h.sourceRecords, UInt64(published))
    XCTAssertEqual(h.forwardedRecords, 32)
    XCTAssertEqual(h.writeIndex, 32)
    XCTAssertEqual(h.neverForwarded, UInt64(published) - 32)
    // the reader comes late: the 16-slot ring kept the newest 16 of the 32 forwarded
    let poll = reader.poll(rank: 1)
    XCTAssertEqual(poll.lost, 16)
    XCTAssertEqual(poll.steps.count, 16)
    XCTAssertEqual(UInt64(poll.steps.count) + poll.lost + poll.corrupt + h.neverForwarded, UInt64(published))
    // the first 8 of each round went out, the rest were never forwarded
    XCTAssertEqual(poll.steps.map(\.step), [33, 34, 35, 36, 37, 38, 39, 40, 49, 50, 51, 52, 53, 54, 55, 56])
  }

  func testLostNodesAreThoseWhoseForwardedRanksAllWentSilent() {
    func rank(_ r: Int, node: Int, age: Double, forwarded: Bool = true, state: RunState = .running) -> RankStatus {
      RankStatus(rank: r, attached: true, pid: 1, host: "h", localRank: 0, heartbeatAge: age, state: state, writeIndex: 0,
                 lastStep: 1, ackedState: .run, ackedStep: 1, checkpointsSaved: 0, lastCheckpointStep: 0, pidAlive: true,
                 node: node, forwarded: forwarded)
    }
    let healthy = [rank(0, node: 0, age: 0.1, forwarded: false), rank(1, node: 1, age: 0.2), rank(2, node: 1, age: 0.3)]
    XCTAssertEqual(JobReader.lostNodes(healthy, after: 5), [])
    XCTAssertEqual(JobReader.nodeCount(healthy), 2)
    // one silent rank of a node that still reports is not a lost node
    XCTAssertEqual(JobReader.lostNodes([rank(1, node: 1, age: 9), rank(2, node: 1, age: 0.3)], after: 5), [])
    XCTAssertEqual(JobReader.lostNodes([rank(0, node: 0, age: 9, forwarded: false), rank(1, node: 1, age: 9), rank(2, node: 1, age: 7),
                                        rank(3, node: 2, age: 6)], after: 5), [1, 2])
    // a node whose ranks finished is done, not lost
    XCTAssertEqual(JobReader.lostNodes([rank(1, node: 1, age: 60, state: .finished)], after: 5), [])
  }
}

import JobSchema
import XCTest

@testable import Telemetry

/// `JobPhase.judge`, the one function every reader asks for a job's phase, over a table of rank
/// states, control requests and liveness.
final class JobPhaseTests: XCTestCase {
  typealias R = PhaseEvidence.Rank

  func rank(_ r: Int, _ s: RunState?, attached: Bool = true, alive: Bool = true, age: Double? = 0.1) -> R {
    R(rank: r, attached: attached, state: s, processAlive: alive, heartbeatAge: age)
  }

  func judge(_ ranks: [R], desired: DesiredState? = nil, creator: Bool = true, present: Bool = true,
             ignores: Bool = false, stall: Int? = nil, last: Int = 50, total: Int = 100, hint: Int? = nil) -> JobPhase {
    var e = PhaseEvidence(ranks: ranks)
    e.desired = desired
    e.creatorAlive = creator
    e.segmentPresent = present
    e.ignoresRequest = ignores
    e.stall = stall.map { StallDiagnosis(rank: $0, silentSeconds: 30, waitingRanks: [], collective: nil) }
    e.lastStep = last
    e.totalSteps = total
    e.failedRankHint = hint
    return JobPhase.judge(e)
  }

  func testTheTable() {
    let cases: [(String, JobPhase, JobPhase)] = [
      ("all running", judge([rank(0, .running), rank(1, .running)], desired: .run), .running),
      ("no control page read", judge([rank(0, .running), rank(1, .running)]), .running),
      ("nothing attached, creator alive", judge([rank(0, nil, attached: false)]), .starting),
      ("nothing attached, creator gone", judge([rank(0, nil, attached: false)], creator: false), .stale),
      ("every rank starting", judge([rank(0, .starting), rank(1, .starting)], desired: .pause), .starting),
      ("one rank still starting", judge([rank(0, .running), rank(1, .starting)], desired: .run), .starting),
      ("an unknown state word counts as starting", judge([rank(0, .running), rank(1, nil)], desired: .run), .starting),
      ("pause asked, one paused", judge([rank(0, .paused), rank(1, .running)], desired: .pause), .pausing),
      ("pause asked, all paused", judge([rank(0, .paused), rank(1, .paused)], desired: .pause), .paused),
      ("pause asked, paused or finished", judge([rank(0, .paused), rank(1, .finished)], desired: .pause), .paused),
      ("pause ignored", judge([rank(0, .running)], desired: .pause, ignores: true), .ignoring(.pause)),
      ("resume asked, one still paused", judge([rank(0, .running), rank(1, .paused)], desired: .run), .resuming),
      ("paused ranks, no control page", judge([rank(0, .paused), rank(1, .running)]), .paused),
      ("paused by itself, not by a request", judge([R(rank: 0, state: .paused, applied: .run)], desired: .run), .paused),
      ("a resume not applied yet", judge([R(rank: 0, state: .paused, applied: .pause)], desired: .run), .resuming),
      ("checkpointing", judge([rank(0, .checkpointing), rank(1, .running)], desired: .run), .checkpointing),
      ("checkpointing outranks paused without a control page", judge([rank(0, .checkpointing), rank(1, .paused)]), .checkpointing),
      ("stop asked", judge([rank(0, .running), rank(1, .finished)], desired: .stop), .stopping),
      ("stop ignored", judge([rank(0, .running)], desired: .stop, ignores: true), .ignoring(.stop)),
      ("all finished at the last step", judge([rank(0, .finished), rank(1, .finished)], last: 100), .finished),
      ("all finished before the last step", judge([rank(0, .finished), rank(1, .finished)], last: 40), .stopped),
      ("finished, no planned steps known", judge([rank(0, .finished)], last: 3, total: 0), .finished),
      ("a rank reported failure", judge([rank(0, .running), rank(1, .failed)]), .failed(rank: 1)),
      ("mpirun's culprit wins", judge([rank(0, .failed), rank(1, .running)], hint: 1), .failed(rank: 1)),
      ("a rank died silently", judge([rank(0, .running), rank(1, .running, alive: false, age: 10)]), .failed(rank: 1)),
      ("a dead rank within the stale limit", judge([rank(0, .running, alive: false, age: 1)]), .running),
      ("a silent rank whose process lives", judge([rank(0, .running, alive: true, age: 100)]), .running),
      ("a finished rank whose process exited", judge([rank(0, .finished, alive: false, age: 100), rank(1, .running)]), .running),
      ("stalled", judge([rank(0, .running), rank(1, .running)], desired: .run, stall: 1), .stalled(rank: 1)),
      ("a stall while pausing", judge([rank(0, .paused), rank(1, .running)], desired: .pause, stall: 1), .stalled(rank: 1)),
      ("no stall while a rank checkpoints", judge([rank(0, .checkpointing), rank(1, .running)], stall: 1), .checkpointing),
      ("no stall once finished", judge([rank(0, .finished)], stall: 0, last: 100), .finished),
      ("segment removed while running", judge([rank(0, .running)], present: false), .stale),
      ("segment removed after finishing", judge([rank(0, .finished)], present: false, last: 100), .finished),
      ("ranks of another node tell nothing", judge([rank(0, nil, attached: false), rank(1, .running)], desired: .run), .running),
    ]
    for (what, got, want) in cases { XCTAssertEqual(got, want, what) }
  }

  func testWordsAndEndings() {
    XCTAssertEqual(JobPhase.ignoring(.pause).word, .running, "a job ignoring a pause runs")
    XCTAssertEqual(JobPhase.stalled(rank: 3).word, .stalled)
    XCTAssertEqual(JobPhase.failed(rank: 2).failedRank, 2)
    let ended: [JobPhase] = [.finished, .stopped, .failed(rank: nil), .stale]
    for p in ended { XCTAssertTrue(p.isTerminal, "\(p)") }
    for p in [JobPhase.starting, .running, .pausing, .paused, .resuming, .checkpointing, .stopping, .stalled(rank: 0)] {
      XCTAssertFalse(p.isTerminal, "\(p)")
    }
    XCTAssertEqual(ended.filter(\.endedCleanly), [.finished, .stopped])
    XCTAssertEqual(JobPhase.liveWords.map(\.rawValue),
                   ["starting", "running", "pausing", "paused", "resuming", "checkpointing", "stopping", "stalled"])
  }

  func testAcknowledgements() {
    typealias A = JobPhase.Acknowledgement
    XCTAssertTrue(JobPhase.applied(.pause, by: [A(state: .paused, applied: .pause), A(state: .finished, applied: .run)]))
    XCTAssertFalse(JobPhase.applied(.pause, by: [A(state: .paused, applied: .pause), A(state: .running, applied: .run)]))
    XCTAssertFalse(JobPhase.applied(.pause, by: [A(state: .paused, applied: .run)]), "paused, but not by this request")
    XCTAssertTrue(JobPhase.applied(.run, by: [A(state: .running, applied: .run)]))
    XCTAssertFalse(JobPhase.applied(.run, by: [A(state: .paused, applied: .run)]))
    XCTAssertTrue(JobPhase.applied(.stop, by: [A(state: .finished, applied: .stop), A(state: .failed, applied: nil)]))
    XCTAssertFalse(JobPhase.applied(.stop, by: [A(state: .running, applied: .stop)]))
  }
}

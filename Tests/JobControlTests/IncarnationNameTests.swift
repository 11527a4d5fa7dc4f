import Foundation
import JobControl
import JobSchema
import Telemetry
import TestSupport
import XCTest

/// Incarnation names another user cannot block, commands that follow a restart, and launch
/// arithmetic that says what does not fit.
final class IncarnationNameTests: XCTestCase {
  /// Issue 25, item 10: `<job>.r1` made in advance by uid 65534 is skipped for a name nobody can
  /// guess, and the restart happens (here the "mpirun" fails at once, so both incarnations fail).
  func testATakenIncarnationNameIsSkipped() throws {
    let base = "flt-taken-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let blocker = "/dev/shm/" + SegmentSpace.default.prefix + base + ".r1"
    let made = try SecondUser.run("echo x > \(blocker)")
    XCTAssertEqual(made.status, 0, made.output)
    defer { unlink(blocker) }
    let sup = JobSupervisor(mpirun: ["/bin/sh", "-c", "exit 1"], tptrain: "tptrain",
                            arguments: ["--job", base, "--steps", "5"], restarts: 1, in: .default)
    let log = Events()
    sup.onEvent = { log.append($0) }
    _ = sup.run()
    let events = log.all
    let jobs = events.compactMap { e -> String? in if case .launched(_, _, let j) = e { return j } else { return nil } }
    XCTAssertEqual(jobs.count, 2, "the restart was not given up: \(events)")
    XCTAssertEqual(jobs.first, base)
    let second = try XCTUnwrap(jobs.last)
    XCTAssertTrue(second.hasPrefix(base + ".r1."), second)
    XCTAssertEqual(second.count, base.count + 3 + 9, "8 random hex digits: \(second)")
    XCTAssertTrue(SegmentName.isValid(second))
    XCTAssertTrue(events.contains { if case .nameTaken(1, base + ".r1", second) = $0 { return true } else { return false } })
  }

  /// tptrain's exit statuses decide, not its words: a non-finite stop and a taken name end the
  /// job without a restart.
  func testExitStatusesDecideTheVerdict() {
    guard case .done(3, _) = JobSupervisor.verdict(status: TrainingExit.nonFinite.rawValue, stderr: "", stopRequested: false,
                                                   controlStop: false) else { return XCTFail("non-finite restarted") }
    guard case .done(4, let s) = JobSupervisor.verdict(status: TrainingExit.jobNameTaken.rawValue, stderr: "", stopRequested: false,
                                                       controlStop: false) else { return XCTFail("a taken name restarted") }
    XCTAssertTrue(s.contains("name is taken"), s)
  }

  /// Issue 25, item 13: `launch --tp 3 --np 2` says what does not fit, not "--dp 0".
  func testLaunchGridThatDoesNotDivide() {
    XCTAssertThrowsError(try LaunchPlan.resolve(np: 2, tp: 3, dp: nil)) { e in
      let line = "\(e)"
      XCTAssertTrue(line.contains("--tp 3 must divide --np 2"), line)
      XCTAssertFalse(line.contains("--dp 0"), line)
    }
    XCTAssertThrowsError(try LaunchPlan.resolve(np: 5, tp: nil, dp: 2)) { e in
      XCTAssertTrue("\(e)".contains("--dp 2 must divide --np 5"), "\(e)")
    }
    XCTAssertTrue(try LaunchPlan.resolve(np: 6, tp: 3, dp: nil) == (6, 3, 2))
  }
}

private final class Events: @unchecked Sendable {
  private let lock = NSLock()
  private var events: [SupervisorEvent] = []
  func append(_ e: SupervisorEvent) { lock.lock(); events.append(e); lock.unlock() }
  var all: [SupervisorEvent] { lock.lock(); defer { lock.unlock() }; return events }
}

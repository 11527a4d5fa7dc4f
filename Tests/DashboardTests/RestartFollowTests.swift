import Foundation
import JobControl
import JobSchema
import Telemetry
import XCTest
import TelemetryFixtures

@testable import Dashboard

/// A supervised job's restart appears as a new segment `<job>.r<k>`; the dashboard follows it.
final class RestartFollowTests: XCTestCase {
  func testSourceFollowsTheNextIncarnation() throws {
    let base = "dash-follow-\(getpid())"
    let first = try syntheticJob(base, steps: 12)
    let (src, h) = try attachedHistory(base)
    XCTAssertEqual(h.latestStep, 12)
    first.finish(failed: true)
    h.ingest(src.poll())
    XCTAssertEqual(src.currentJobName, base, "no successor yet: stays on the first incarnation")

    _ = try syntheticJob(base + ".r1", steps: 20)
    let p = src.poll()
    XCTAssertEqual(src.currentJobName, base + ".r1")
    XCTAssertTrue(p.events.contains { $0.kind == .info && $0.text.contains("\(base).r1") }, "\(p.events)")
    h.ingest(p)
    XCTAssertEqual(h.latestStep, 20)
    // control requests now reach the new incarnation
    try src.setDesired(.pause)
    XCTAssertEqual(try JobReader(job: base + ".r1", in: .default).control().desired, .pause)

    src.followRestarts = false
    _ = try syntheticJob(base + ".r2", steps: 0)
    _ = src.poll()
    XCTAssertEqual(src.currentJobName, base + ".r1", "following can be turned off")
  }

  /// When `<job>.r1` was taken, the supervisor runs incarnation 1 as `<job>.r1.<hex>`: the
  /// dashboard follows that name too (and on from it to incarnation 2), by the supervisor's rule.
  func testSourceFollowsASuffixedIncarnationName() throws {
    let base = "dash-sfx-\(getpid())"
    let first = try syntheticJob(base, steps: 5)
    let (src, h) = try attachedHistory(base)
    first.finish(failed: true)
    let suffixed = JobSupervisor.unpredictableJobName(base: base, incarnation: 1)
    XCTAssertEqual(IncarnationName.incarnation(of: suffixed, base: base), 1)
    _ = try syntheticJob(suffixed, steps: 9)
    // an unrelated job whose name merely starts alike is not an incarnation
    _ = try syntheticJob(base + ".r1x", steps: 3)
    // (/dev/shm is listed for a suffixed name at most once a second)
    let deadline = Date().addingTimeInterval(5)
    while src.currentJobName != suffixed && Date() < deadline {
      h.ingest(src.poll())
      usleep(50_000)
    }
    XCTAssertEqual(src.currentJobName, suffixed)
    XCTAssertEqual(h.latestStep, 9)
    XCTAssertTrue(h.events.suffix(h.events.count).contains { $0.text.contains("now following \(suffixed) (incarnation 1)") })
    // attached to the suffixed name, the next restart is followed as well
    let again = try TelemetrySource(job: suffixed, in: .default, logPath: nil)
    _ = try syntheticJob(base + ".r2", steps: 11)
    _ = again.poll()
    XCTAssertEqual(again.currentJobName, base + ".r2")
  }

  /// After a restart the header names the new incarnation, and a failure mpirun reports later
  /// is dated at the failed incarnation's last step.
  func testFailureIsDatedAtTheFailedIncarnationsStep() throws {
    let base = "dash-date-\(getpid())"
    let log = NSTemporaryDirectory() + base + ".log"
    try Data("# tptop launch\n".utf8).write(to: URL(fileURLWithPath: log))
    defer { try? FileManager.default.removeItem(atPath: log) }
    // incarnation 0 reaches step 12; the supervisor's incarnation 1 is at step 30 when seen
    let jobs = try [(base, 12), (base + ".r1", 30)].map { name, steps in
      let j = try SyntheticJob(job: name, worldSize: 2, tp: 2, totalSteps: 100)
      j.advance(steps: steps)
      return j
    }
    defer { for j in jobs { try? j.remove() } }
    let src = try TelemetrySource(job: base, in: .default, logPath: log)
    src.followRestarts = false
    let h = JobHistory(job: src.job)
    h.ingest(src.poll())
    src.followRestarts = true
    h.ingest(src.poll())
    XCTAssertEqual(h.latestStep, 30)
    XCTAssertEqual(h.job.name, base + ".r1")
    XCTAssertEqual(DashboardModel(history: h, state: AppState(), themeName: "default").header.job, base + ".r1")
    // the supervisor's output reaches the log after the restart was followed
    let report = "mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed).\n"
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    handle.seekToEndOfFile()
    handle.write(Data(report.utf8))
    try handle.close()
    h.ingest(src.poll())
    let events = h.events.suffix(h.events.count)
    let failure = events.last { $0.kind == .rankFailed && $0.text.hasPrefix("mpirun: rank 1") }
    XCTAssertEqual(failure?.step, 12, "\(events.map(\.text))")
  }
}

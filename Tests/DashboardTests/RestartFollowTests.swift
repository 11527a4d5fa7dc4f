import XCTest
import Telemetry
@testable import Dashboard

/// A supervised job's restart appears as a new segment `<job>.r<k>`; the dashboard follows it.
final class RestartFollowTests: XCTestCase {
  func testSourceFollowsTheNextIncarnation() throws {
    let base = "dash-follow-\(getpid())"
    let first = try SyntheticJob(job: base, worldSize: 2, tp: 2, totalSteps: 100)
    defer { try? first.remove() }
    first.advance(steps: 12)
    let src = try TelemetrySource(job: base, logPath: nil)
    let h = JobHistory(job: src.job)
    h.ingest(src.poll())
    XCTAssertEqual(h.latestStep, 12)
    first.finish(failed: true)
    h.ingest(src.poll())
    XCTAssertEqual(src.currentJobName, base, "no successor yet: stays on the first incarnation")

    let second = try SyntheticJob(job: base + ".r1", worldSize: 2, tp: 2, totalSteps: 100)
    defer { try? second.remove() }
    second.advance(steps: 20)
    let p = src.poll()
    XCTAssertEqual(src.currentJobName, base + ".r1")
    XCTAssertTrue(p.events.contains { $0.kind == .info && $0.text.contains("\(base).r1") }, "\(p.events)")
    h.ingest(p)
    XCTAssertEqual(h.latestStep, 20)
    // control requests now reach the new incarnation
    try src.setDesired(.pause)
    XCTAssertEqual(try JobReader(job: base + ".r1").control().desired, .pause)

    src.followRestarts = false
    let third = try SyntheticJob(job: base + ".r2", worldSize: 2, tp: 2, totalSteps: 100)
    defer { try? third.remove() }
    _ = src.poll()
    XCTAssertEqual(src.currentJobName, base + ".r1", "following can be turned off")
  }
}

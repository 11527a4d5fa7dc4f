import XCTest
import Telemetry
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
    XCTAssertEqual(try JobReader(job: base + ".r1").control().desired, .pause)

    src.followRestarts = false
    _ = try syntheticJob(base + ".r2", steps: 0)
    _ = src.poll()
    XCTAssertEqual(src.currentJobName, base + ".r1", "following can be turned off")
  }
}

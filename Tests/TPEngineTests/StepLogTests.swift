import Foundation
import JobSchema
import XCTest

@testable import TPEngine

/// `tptrain --log`: one JSON object per step holding every log form of the step field table.
final class StepLogTests: XCTestCase {
  func testEveryLogFormOfTheTableIsInTheLine() throws {
    var m = StepMetrics()
    for (i, f) in StepFields.recorded.enumerated() { f.assign(Double(i + 2) * 1000, to: &m) }
    m.tokens = 1024
    m.stepNs = 250_000_000
    let line = StepLog.line(step: 9, metrics: m, dp: 2, skippedSteps: 1, cycleNs: 260_000_000, unixNs: 1_796_608_800_123_000_000)
    let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
    XCTAssertEqual(Set(o.keys), Set(StepLog.keys), line)
    for f in StepFields.all {
      for l in f.log {
        let v = try XCTUnwrap(o[l.key] as? NSNumber, "\(l.key) missing: \(line)")
        XCTAssertEqual(v.doubleValue, l.value(m, replicas: 2), accuracy: 1e-3 * max(1, abs(l.value(m, replicas: 2))), l.key)
      }
    }
    XCTAssertEqual(o["tokens_per_s"] as? Double, 8192, "the job's rate: d × 1024 tokens / 0.25 s")
    XCTAssertEqual(o["comm_ms"] as? Double, o["comm_exposed_ms"] as? Double, "comm_ms is the exposed time's older name")
    XCTAssertEqual(o["collective_count"] as? Int, o["allreduce_count"] as? Int)
    XCTAssertEqual(o["time"] as? String, "2026-12-07T02:00:00.123Z")
    XCTAssertEqual(o["skipped_steps"] as? Int, 1)
  }

  func testANonFiniteLossIsNull() throws {
    var m = StepMetrics()
    m.loss = .nan
    m.gradNorm = .infinity
    let line = StepLog.line(step: 1, metrics: m, dp: 1, skippedSteps: 0, cycleNs: 0, unixNs: 0)
    let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
    XCTAssertTrue(o["loss"] is NSNull, line)
    XCTAssertTrue(o["grad_norm"] is NSNull, line)
  }
}

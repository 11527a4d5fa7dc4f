import XCTest

@testable import JobSchema

/// The shared vocabulary: the codes stored in the telemetry segment and the histogram's buckets.
final class JobSchemaTests: XCTestCase {
  func testStateCodesAreTheSegmentFormat() {
    // docs/TELEMETRY.md: rank header `state`, control page `desired_state`, shard entry `split`.
    XCTAssertEqual(RunState.allCases.map(\.rawValue), [0, 1, 2, 3, 4, 5])
    XCTAssertEqual(RunState.allCases.map(\.name), ["starting", "running", "paused", "checkpointing", "finished", "failed"])
    XCTAssertEqual(DesiredState.allCases.map(\.rawValue), [0, 1, 2])
    XCTAssertEqual(DesiredState.allCases.map(\.name), ["run", "pause", "stop"])
    XCTAssertEqual(SplitKind.allCases.map(\.rawValue), [0, 1, 2, 3])
    XCTAssertEqual(SplitKind.allCases.map(\.name), ["replicated", "column", "row", "vocab"])
    XCTAssertNil(RunState(rawValue: 6))
    XCTAssertNil(DesiredState(rawValue: 3))
    XCTAssertNil(SplitKind(rawValue: -1))
  }

  func testHistogramBucketsAreLog2Microseconds() {
    XCTAssertEqual(LatencyHistogram.bucket(forNanoseconds: 0), 0)
    XCTAssertEqual(LatencyHistogram.bucket(forNanoseconds: 999), 0)
    XCTAssertEqual(LatencyHistogram.bucket(forNanoseconds: 1_999), 0)
    XCTAssertEqual(LatencyHistogram.bucket(forNanoseconds: 2_000), 1)
    XCTAssertEqual(LatencyHistogram.bucket(forNanoseconds: 1_024_000), 10)
    XCTAssertEqual(LatencyHistogram.bucket(forNanoseconds: .max), 15)
    var h = LatencyHistogram()
    h.record(nanoseconds: 3_000)
    h.record(nanoseconds: 3_500)
    h.record(nanoseconds: 10_000_000_000)
    XCTAssertEqual(h[1], 2)
    XCTAssertEqual(h[15], 1)
    XCTAssertEqual((0..<LatencyHistogram.bucketCount).map { h[$0] }.reduce(0, +), 3)
    XCTAssertEqual(h[-1], 0)
    XCTAssertEqual(h[16], 0)
    h[16] = 7
    XCTAssertEqual((h + h)[1], 4)
    XCTAssertNotEqual(h, LatencyHistogram())
  }

  func testStepMetricsHoldNoReferences() {
    // Filled in place inside the allocation-free step: a plain value, the histogram included.
    XCTAssertTrue(_isPOD(StepMetrics.self))
    XCTAssertEqual(MemoryLayout<LatencyHistogram>.size, 64)
  }

  /// The supervisor names incarnations by this rule and readers follow them by it.
  func testIncarnationNamesBothWays() {
    XCTAssertEqual(IncarnationName.name(base: "j", incarnation: 0), "j")
    XCTAssertEqual(IncarnationName.name(base: "j", incarnation: 3), "j.r3")
    let odd = IncarnationName.unpredictable(base: "j.r1", incarnation: 2, nonce: 0x5e3edf1)
    XCTAssertEqual(odd, "j.r1.r2.05e3edf1")
    XCTAssertTrue(IncarnationName.parse(odd) == ("j.r1", 2))
    XCTAssertTrue(IncarnationName.parse("job.r12") == ("job", 12))
    XCTAssertTrue(IncarnationName.parse("job") == ("job", 0))
    for notOne in ["job.r0", "job.r", "job.r1x", "job.r1.5e3", "job.r1.5e3edf1g", "job.r01", ".r1"] {
      XCTAssertEqual(IncarnationName.parse(notOne).incarnation, 0, notOne)
    }
    XCTAssertEqual(IncarnationName.incarnation(of: "job.r1.5e3edf13", base: "job"), 1)
    XCTAssertNil(IncarnationName.incarnation(of: "job.r1.5e3edf13", base: "jo"))
  }
}

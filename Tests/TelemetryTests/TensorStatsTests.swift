import JobSchema
import XCTest
import Telemetry
import TelemetryFixtures

/// Per-shard norm records (minor version 1): written by a rank, read back exactly, exported.
final class TensorStatsTests: XCTestCase {
  func testTensorStatsRoundTripAndExport() throws {
    let name = "tstats-\(getpid())"
    let job = try SyntheticJob(job: name, worldSize: 2, tp: 2, totalSteps: 10)
    defer { try? job.remove() }
    var values: [Float] = []
    for i in 0..<16 { values += [Float(i) + 0.5, Float(i) * 0.25, 1e-3 * Float(i + 1)] }
    values.withUnsafeBufferPointer { job.rankWriters[1].writeTensorStats(step: 7, firstTensor: 0, values: $0) }
    // more than fit in one record: only the first `statsCapacity` entries are kept
    let many = [Float](repeating: 2, count: 3 * 40)
    many.withUnsafeBufferPointer { job.rankWriters[0].writeTensorStats(step: 8, firstTensor: 3, values: $0) }

    let reader = try JobReader(job: name, in: .default)
    let polls = reader.poll()
    XCTAssertEqual(polls[1].tensorStats.count, 1)
    let t = polls[1].tensorStats[0]
    XCTAssertEqual(t.rank, 1)
    XCTAssertEqual(t.step, 7)
    XCTAssertEqual(t.firstTensor, 0)
    XCTAssertEqual(t.entries.count, 16)
    for i in 0..<16 {
      XCTAssertEqual(t.entries[i], TensorNorms(weightNorm: values[3 * i], gradNorm: values[3 * i + 1], updateRatio: values[3 * i + 2]))
    }
    XCTAssertEqual(polls[0].tensorStats.first?.entries.count, SegmentLayout.Slot.statsCapacity)
    XCTAssertEqual(polls[0].tensorStats.first?.firstTensor, 3)
    XCTAssertEqual(polls[0].lost + polls[1].lost, 0)

    let line = TelemetryExport.line(.tensorStats(t), format: .jsonl)
    XCTAssertTrue(line.hasPrefix("{\"type\":\"tensor_stats\",\"rank\":1,"), line)
    XCTAssertTrue(line.contains("{\"tensor\":15,\"weight_norm\":15.5,\"grad_norm\":3.75,"), line)
  }
}

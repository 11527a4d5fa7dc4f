import Foundation
import JobSchema
import XCTest

@testable import Telemetry

/// `tptop export`: the wall clock beside the boot clock, the `--log` line's names and units, and
/// tensor statistics by name.
final class ExportClockTests: XCTestCase {
  func step() -> StepRecord {
    var s = StepRecord()
    s.rank = 1
    s.index = 7
    s.timestampNs = 4_039_761_739_134
    s.step = 12
    s.loss = 2.5
    s.tokens = 1024
    s.stepNs = 250_000_000
    s.forwardNs = 100_000_000
    s.commNs = 20_000_000
    s.allReduceTotalNs = 50_000_000
    s.commPeerWaitMicros = 5_000
    return s
  }

  // 2026-12-07T02:00:00Z = 1796608800 s since the epoch
  let context = TelemetryExport.Context(wallMinusBootNs: 1_796_608_800_000_000_000 - 4_039_761_739_134 + 123_000_000,
                                        tensorNames: ["wte", "wpe", "ln1w"])

  func testStepCarriesWallClockAndLogUnits() throws {
    let line = TelemetryExport.line(.step(step()), format: .jsonl, context: context)
    let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
    XCTAssertEqual(o["timestamp_ns"] as? Int, 4_039_761_739_134)
    XCTAssertEqual(o["unix_ns"] as? Int, 1_796_608_800_123_000_000)
    XCTAssertEqual(o["time"] as? String, "2026-12-07T02:00:00.123Z")
    XCTAssertEqual(o["step_ms"] as? Double, 250)
    XCTAssertEqual(o["tokens_per_s"] as? Double, 4096)
    XCTAssertEqual(o["forward_ms"] as? Double, 100)
    XCTAssertEqual(o["comm_exposed_ms"] as? Double, 20)
    XCTAssertEqual(o["comm_total_ms"] as? Double, 50)
    XCTAssertEqual(o["comm_peer_wait_ms"] as? Double, 5)
    // every --log key the record can carry (skipped_steps and cycle_ms it cannot)
    for key in ["step", "loss", "lr", "grad_norm", "step_ms", "tokens_per_s", "forward_ms", "backward_ms", "optimizer_ms",
                "comm_ms", "comm_exposed_ms", "comm_total_ms", "comm_peer_wait_ms", "allreduce_count", "allreduce_bytes",
                "rss_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes", "gflops"] {
      XCTAssertNotNil(o[key], "export lacks the --log field \(key)")
    }
    // CSV: the same columns, by name
    let csv = TelemetryExport.line(.step(step()), format: .csv, context: context).split(separator: ",", omittingEmptySubsequences: false)
    XCTAssertEqual(csv.count, TelemetryExport.csvColumns.count)
    let col = { (name: String) in String(csv[TelemetryExport.csvColumns.firstIndex(of: name)!]) }
    XCTAssertEqual(col("time"), "2026-12-07T02:00:00.123Z")
    XCTAssertEqual(col("unix_ns"), "1796608800123000000")
    XCTAssertEqual(col("step_ms"), "250.0000")
  }

  func testTensorStatsByName() throws {
    var t = TensorStatsRecord()
    t.rank = 0
    t.step = 10
    t.firstTensor = 1
    t.timestampNs = 4_039_761_739_134
    t.entries = [TensorNorms(weightNorm: 2, gradNorm: 0.5, updateRatio: 0.001), TensorNorms(weightNorm: 3, gradNorm: 1, updateRatio: 0.002)]
    let line = TelemetryExport.line(.tensorStats(t), format: .jsonl, context: context)
    let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
    let tensors = try XCTUnwrap(o["tensors"] as? [[String: Any]])
    XCTAssertEqual(tensors.map { $0["name"] as? String }, ["wpe", "ln1w"])
    XCTAssertEqual(o["time"] as? String, "2026-12-07T02:00:00.123Z")
    let csv = TelemetryExport.line(.tensorStats(t), format: .csv, context: context)
    XCTAssertTrue(csv.contains("wpe:2.0/0.5/0.001 ln1w:3.0/1.0/0.002"), csv)
    // a tensor the description does not name keeps its index
    t.firstTensor = 2
    XCTAssertTrue(TelemetryExport.line(.tensorStats(t), format: .csv, context: context).contains("ln1w:2.0/0.5/0.001 3:3.0"))
  }
}

import Foundation
import JobSchema
import XCTest

@testable import Telemetry

/// The step field table (JobSchema's `StepFields`) against the renderers that take every field:
/// the export's JSON lines and CSV carry each field under its name, its older names and its log
/// forms, with the field's own value; `watch` shows each field the table gives a watch name.
/// (The store's columns: RunStoreTests; `--log`: TPEngineTests; the endpoint: MetricsEndpointTests;
/// the Python writer: python/tests/test_step_fields.py.)
final class StepFieldTests: XCTestCase {
  /// A record (rank 0, step 0) whose every field holds a distinct value.
  func record() -> StepRecord {
    var s = StepRecord()
    for (i, f) in StepFields.recorded.enumerated() { f.assign(Double(i + 2) * 1000, to: &s.metrics) }
    return s
  }

  func testEveryFieldIsInTheJSONLinesUnderEveryName() throws {
    let s = record()
    let line = TelemetryExport.line(.step(s), format: .jsonl, context: .init(wallMinusBootNs: 0))
    let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
    for f in StepFields.all {
      for name in (f.recorded ? [f.name] + f.aliases : []) {
        let v = try XCTUnwrap(o[name] as? NSNumber, "\(name) missing in \(line)")
        XCTAssertEqual(v.doubleValue, f.value(s.metrics), accuracy: 1e-3 * max(1, abs(f.value(s.metrics))), name)
      }
      XCTAssertFalse(f.log.isEmpty && !f.recorded, "\(f.name): a derived field must have a log form to be shown")
      for l in f.log {
        let v = try XCTUnwrap(o[l.key] as? NSNumber, "\(l.key) missing in \(line)")
        XCTAssertEqual(v.doubleValue, l.value(s.metrics), accuracy: 1e-3 * max(1, abs(l.value(s.metrics))), l.key)
      }
    }
    XCTAssertEqual(o["collective_count"] as? Int, o["allreduce_count"] as? Int, "the older name is an alias")
  }

  func testEveryFieldIsACSVColumnAndOldColumnsKeepTheirPlaces() throws {
    let columns = TelemetryExport.csvColumns
    for f in StepFields.all {
      for name in (f.recorded ? [f.name] + f.aliases : []) + f.log.map(\.key) {
        XCTAssertTrue(columns.contains(name), "CSV lacks \(name)")
      }
    }
    XCTAssertEqual(Set(columns).count, columns.count, "each column once")
    // the columns of earlier versions, in their places (readers by position keep working)
    let before = ["type", "rank", "index", "step", "timestamp_ns", "loss", "lr", "grad_norm", "tokens", "step_ns",
                  "forward_ns", "backward_ns", "optimizer_ns", "comm_ns", "data_ns", "allreduce_count",
                  "allreduce_bytes", "allreduce_total_ns", "allreduce_max_ns"] + (0..<16).map { "allreduce_hist_\($0)" }
      + ["rss_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes", "compute_busy", "gflops",
         "comm_peer_wait_us", "event", "text", "unix_ns", "time", "step_ms", "tokens_per_s", "forward_ms", "backward_ms",
         "optimizer_ms", "comm_ms", "comm_exposed_ms", "comm_total_ms", "comm_peer_wait_ms"]
    XCTAssertEqual(Array(columns.prefix(before.count)), before)
    let s = record()
    let cells = TelemetryExport.line(.step(s), format: .csv).split(separator: ",", omittingEmptySubsequences: false)
    XCTAssertEqual(cells.count, columns.count)
    let count = StepFields.named("collective_count")!
    XCTAssertEqual(String(cells[columns.firstIndex(of: "collective_count")!]), count.exportText(s.metrics))
    XCTAssertEqual(String(cells[columns.firstIndex(of: "allreduce_count")!]), count.exportText(s.metrics))
  }

  func testTheTableNamesEachKeyOnce() {
    let names = StepFields.all.flatMap { [$0.name] + $0.aliases }
    XCTAssertEqual(Set(names).count, names.count, "\(names)")
    XCTAssertEqual(Set(StepFields.logKeys).count, StepFields.logKeys.count, "\(StepFields.logKeys)")
    XCTAssertEqual(StepFields.named("allreduce_count")?.name, "collective_count")
    // every recorded field reads back what is assigned (the store's round trip)
    var m = StepMetrics()
    for f in StepFields.recorded {
      f.assign(7, to: &m)
      XCTAssertEqual(f.value(m), 7, f.name)
    }
  }

  func testReportedMeansSomeStepCarriesIt() {
    var m = StepMetrics()
    m.loss = 0
    m.stepNs = 5
    let steps = [m, StepMetrics()]
    XCTAssertTrue(StepFields.named("loss")!.reported(in: steps), "the loss is always reported")
    XCTAssertTrue(StepFields.named("step_ns")!.reported(in: steps))
    XCTAssertFalse(StepFields.named("allreduce_max_ns")!.reported(in: steps))
    XCTAssertFalse(StepFields.named("comm_total_ns")!.reported(in: steps))
  }

  func testOneRateEverywhere() {
    var m = StepMetrics()
    m.tokens = 1000
    m.stepNs = 500_000_000
    XCTAssertEqual(m.tokensPerSecond, 2000)
    XCTAssertEqual(StepMetrics.jobTokensPerSecond(replicaRates: [2000, 1000], dp: 4), 6000)
    XCTAssertNil(StepMetrics.jobTokensPerSecond(replicaRates: [0], dp: 2), "an untimed step has no rate")
    let log = StepFields.named("tokens_per_s")!.log[0]
    XCTAssertEqual(log.value(m), 2000, "a rank's record: its replica's rate")
    XCTAssertEqual(log.value(m, replicas: 3), 6000, "a line for the whole job: d × the replica's rate")
  }
}

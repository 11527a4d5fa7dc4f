import JobSchema
import XCTest

@testable import RunStore

/// The store's per-rank columns are the step field table's recorded fields, under the names the
/// store's schema (version 1) has always used.
final class StepColumnTests: XCTestCase {
  func testColumnsAreTheTablesRecordedFields() {
    XCTAssertEqual(StepColumns.all.map(\.column), StepFields.recorded.map(\.column))
    XCTAssertEqual(StepColumns.all.map(\.column), [
      "loss", "lr", "grad_norm", "tokens", "step_ns", "forward_ns", "backward_ns", "optimizer_ns", "comm_ns", "data_ns",
      "allreduce_count", "allreduce_bytes", "allreduce_total_ns", "allreduce_max_ns", "rss_bytes", "param_bytes",
      "grad_bytes", "optimizer_bytes", "activation_bytes", "compute_busy", "gflops", "comm_peer_wait_us",
    ], "the schema's column names never change")
    let create = StoreSchema.creation.first { $0.contains("rank_steps") }!
    for f in StepFields.recorded {
      XCTAssertTrue(create.contains(" \(f.column),") || create.contains(" \(f.column)_min"), f.column)
    }
    XCTAssertEqual(StepColumns.index("collective_count"), StepColumns.index("allreduce_count"))
  }
}

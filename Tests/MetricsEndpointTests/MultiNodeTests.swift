import Foundation
import Glibc
import Telemetry
import TestSupport
import XCTest

@testable import MetricsEndpoint

/// A job on two simulated nodes (`tptrain --simulate-nodes 2`, 4 real mpirun ranks, t=2): node
/// 0's namespace serves every rank (ranks 2–3 forwarded, labelled node 1); node 1's namespace
/// serves its own ranks only, as docs/METRICS.md says.
final class MultiNodeTests: XCTestCase {
  private func scrape(_ job: String, namespace: String?) throws -> [Sample] {
    let scraper = MetricsScraper(space: SegmentSpace(namespace: namespace), only: job)
    return try parseSamples(String(decoding: scraper.scrape(.prometheusText), as: UTF8.self))
  }

  func testNodeZeroServesEveryRankAndEachNodeItsOwn() throws {
    guard let mpirun = which("mpirun") else { throw MissingTool.error("mpirun (make test installs openmpi-bin)") }
    let tptrain = try BuildProducts.path("tptrain")
    let job = uniqueJob("nodes")
    let ck = FileManager.default.temporaryDirectory.appendingPathComponent("prom-nodes-ck-\(getpid())")
    defer {
      shm_unlink("/tptop." + job)
      shm_unlink("/tptop@node1." + job)
      try? FileManager.default.removeItem(at: ck)
    }
    let r = try runTool(mpirun, [
      "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "4", tptrain, "--model", "tiny", "--tp", "2",
      "--batch", "2", "--seq", "16", "--steps", "30", "--job", job, "--quiet", "--threads", "1", "--simulate-nodes", "2",
      "--checkpoint-dir", ck.path,
    ])
    XCTAssertEqual(r.status, 0, r.err)

    let all = try scrape(job, namespace: nil)
    for rank in 0..<4 {
      let labels = ["job": job, "rank": "\(rank)", "tp_rank": "\(rank % 2)", "dp_rank": "\(rank / 2)", "node": "\(rank / 2)"]
      XCTAssertEqual(all.value("tptop_step", labels), 30, "rank \(rank)")
      XCTAssertEqual(all.value("tptop_records_lost_total", labels), 0, "rank \(rank)")
    }
    XCTAssertEqual(all.value("tptop_nodes_lost", ["job": job]), 0)
    XCTAssertEqual(all.value("tptop_job_state", ["job": job, "state": "finished"]), 1)
    XCTAssertEqual(all.matching("tptop_job_info", ["job": job]).first?.labels["world_size"], "4")

    let node1 = try scrape(job, namespace: "node1")
    XCTAssertEqual(Set(node1.matching("tptop_step", ["job": job]).map { $0.labels["rank"]! }), ["2", "3"])
    for rank in 2..<4 {
      // the same record at the source as forwarded to node 0
      XCTAssertEqual(node1.value("tptop_loss", ["rank": "\(rank)"]), all.value("tptop_loss", ["rank": "\(rank)"]))
      XCTAssertEqual(node1.value("tptop_step", ["rank": "\(rank)", "node": "1"]), 30)
    }
  }
}

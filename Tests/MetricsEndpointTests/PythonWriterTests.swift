import Foundation
import Glibc
import Telemetry
import TestSupport
import XCTest

@testable import MetricsEndpoint

/// A job written by the Python writer (`python/tptop_telemetry`, as PyTorch jobs use it) is
/// served the same way as tptrain's.
final class PythonWriterTests: XCTestCase {
  func testAPythonJobAppearsWithItsValues() throws {
    guard let python = which("python3") else { throw MissingTool.error("python3") }
    let name = uniqueJob("py")
    defer { shm_unlink("/" + SegmentSpace.default.prefix + name) }
    let pythonDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("python").path
    let script = """
      import sys
      from tptop_telemetry import Job
      job = Job.create(sys.argv[1], world_size=2, tp=2, total_steps=4)
      ws = [job.rank_writer(r, local_rank=r) for r in range(2)]
      for step in range(1, 5):
          for w in ws:
              w.step(step=step, loss=5.0 - step / 8 + w.world_rank / 1024, lr=1e-3 * step, tokens=512,
                     step_ms=20 + step, comm_ms=3, grad_norm=0.5, param_bytes=1000, histogram=[0] * 6 + [4] + [0] * 9)
      for w in ws:
          w.finish()
      """
    var env = ProcessInfo.processInfo.environment
    env["PYTHONPATH"] = pythonDir
    let r = try runTool(python, ["-c", script, name], environment: env)
    guard r.status == 0 else {
      if r.err.contains("x86-64") || r.err.contains("platform") { throw MissingTool.error("the Python writer's platform: \(r.err)") }
      return XCTFail("python writer: \(r.err)")
    }
    let scraper = MetricsScraper(space: .default, only: name)
    let samples = try parseSamples(String(decoding: scraper.scrape(.prometheusText), as: UTF8.self))
    for rank in 0..<2 {
      let labels = ["job": name, "rank": "\(rank)", "tp_rank": "\(rank)", "dp_rank": "0"]
      XCTAssertEqual(samples.value("tptop_step", labels), 4)
      XCTAssertEqual(samples.value("tptop_loss", labels), Double(Float(5.0 - 4.0 / 8 + Double(rank) / 1024)))
      XCTAssertEqual(samples.value("tptop_learning_rate", labels), Double(Float(4e-3)))
      XCTAssertEqual(samples.value("tptop_step_seconds", labels)!, 0.024, accuracy: 1e-9)
      XCTAssertEqual(samples.value("tptop_comm_exposed_seconds", labels)!, 0.003, accuracy: 1e-9)
      XCTAssertEqual(samples.value("tptop_memory_bytes", labels.merging(["kind": "params"]) { a, _ in a }), 1000)
      // 4 calls in bucket 6 ([64, 128) µs) per step, 4 steps
      XCTAssertEqual(samples.value("tptop_allreduce_latency_seconds_count", labels), 16)
      XCTAssertEqual(samples.value("tptop_allreduce_latency_seconds_bucket", labels.merging(["le": "6.4e-05"]) { a, _ in a }), 0)
      XCTAssertEqual(samples.value("tptop_allreduce_latency_seconds_bucket", labels.merging(["le": "0.000128"]) { a, _ in a }), 16)
    }
    XCTAssertEqual(samples.value("tptop_job_state", ["job": name, "state": "finished"]), 1)
  }
}

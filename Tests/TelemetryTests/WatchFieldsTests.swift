import Foundation
import JobSchema
import TestSupport
import XCTest
import TelemetryFixtures

@testable import Telemetry

/// `tptop watch` shows each field the step field table gives a watch name, and a field no rank
/// reported (a Python loop without collectives) as "-", never as a measured 0.
final class WatchFieldsTests: XCTestCase {
  private func tool() throws -> String {
    guard let t = ToolPaths.debug else { throw MissingTool.error("the tptop executable next to the tests (swift build --product tptop)") }
    return t
  }

  /// Steps 1…3 on both ranks of a finished job whose records carry `fill`.
  private func job(_ tag: String, fill: (inout StepMetrics) -> Void) throws -> (String, SyntheticJob) {
    let name = uniqueJob(tag)
    let j = try SyntheticJob(job: name, worldSize: 2, tp: 2, totalSteps: 3)
    for step in 1...3 {
      for w in j.rankWriters {
        var m = StepMetrics()
        m.step = step
        m.loss = 2.5
        m.tokens = 1024
        m.stepNs = 250_000_000
        fill(&m)
        w.writeStep(m, timestampNs: telemetryMonotonicNanos())
      }
    }
    j.finish()
    return (name, j)
  }

  func testFieldsNotReportedReadAsUnknown() throws {
    let tool = try tool()
    let (name, j) = try job("watch-py") { _ in }
    defer { try? j.remove() }
    let out = try runTool(tool, ["watch", name, "--from-start"])
    XCTAssertEqual(out.status, 0, out.stderr)
    let lines = out.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("step ") }
    XCTAssertEqual(lines.count, 3, out.stdout)
    for l in lines {
      XCTAssertTrue(l.contains("  allreduce max -"), l)
      XCTAssertTrue(l.contains("  exposed max -"), l)
      XCTAssertTrue(l.contains("  hidden -"), l)
      XCTAssertTrue(l.contains("  lr -") && l.contains("  gnorm -"), l)
      XCTAssertFalse(l.contains("0.000 ms") || l.contains(" 0.0 ms"), "an unreported field shown as zero: \(l)")
      XCTAssertTrue(l.contains("  tok/s 4096"), "d=1: the replica's 1024 tokens in 0.25 s: \(l)")
    }
  }

  func testEveryWatchFieldIsShown() throws {
    let tool = try tool()
    let (name, j) = try job("watch-all") { m in
      m.lr = 3e-4
      m.gradNorm = 1.5
      m.commNs = 20_000_000
      m.allReduceTotalNs = 30_000_000
      m.allReduceMaxNs = 4_000_000
      m.allReduceCount = 12
    }
    defer { try? j.remove() }
    let out = try runTool(tool, ["watch", name, "--from-start"])
    XCTAssertEqual(out.status, 0, out.stderr)
    let line = try XCTUnwrap(out.stdout.split(separator: "\n").map(String.init).first { $0.hasPrefix("step 1/3") }, out.stdout)
    for f in StepFields.all {
      guard let label = f.watch else { continue }
      XCTAssertTrue(line.contains("  \(label) "), "watch lacks \(f.name) (\(label)): \(line)")
    }
    XCTAssertTrue(line.contains("  allreduce max 4.000 ms"), line)
    XCTAssertTrue(line.contains("  lr 3.00e-04  "), "lr as tptrain's console and the dashboard write it: \(line)")
    XCTAssertTrue(line.contains("  exposed max 20.0 ms r"), line)
    XCTAssertTrue(line.contains("  hidden 10.0 ms"), line)
  }
}

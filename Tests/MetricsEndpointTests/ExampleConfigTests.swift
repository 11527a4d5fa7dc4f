import Foundation
import TestSupport
import XCTest

/// `examples/prometheus/`: the configuration and alerting rules pass promtool's checks, the rules'
/// unit tests (`rules_test.yml`) pass, and the hostfile script writes valid targets.
final class ExampleConfigTests: XCTestCase {
  private var examples: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("examples/prometheus")
  }

  func testPromtoolAcceptsTheExampleConfigurationAndItsRulesFireAsTested() throws {
    guard let promtool = which("promtool") else { throw MissingTool.error("promtool (make test-deps installs Debian's prometheus)") }
    let dir = examples.path
    for args in [["check", "config", "\(dir)/prometheus.yml"], ["check", "rules", "\(dir)/rules.yml"],
                 ["test", "rules", "\(dir)/rules_test.yml"]] {
      let r = try runTool(promtool, args)
      XCTAssertEqual(r.status, 0, "promtool \(args.joined(separator: " ")): \(r.out)\(r.err)")
    }
  }

  func testTargetsFromAHostfile() throws {
    let hosts = FileManager.default.temporaryDirectory.appendingPathComponent("prom-hosts-\(getpid())")
    try "# two nodes\nnodeA slots=2\n\nnodeB slots=2 max_slots=4\n".write(to: hosts, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: hosts) }
    let r = try runTool("/bin/bash", [examples.appendingPathComponent("targets-from-hostfile.sh").path, hosts.path, "9500"])
    XCTAssertEqual(r.status, 0, r.err)
    let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])
    XCTAssertEqual(json.map { $0["targets"] as? [String] }, [["nodeA:9500"], ["nodeB:9500"]])
    XCTAssertEqual(json.map { ($0["labels"] as? [String: String])?["node_index"] }, ["0", "1"])
  }
}

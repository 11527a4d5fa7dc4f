import Foundation
import XCTest

/// Every rank's bytes by category, measured on real ranks (`tptrain --memory-report`, and the
/// `--log` fields of a training run), against docs/MEMORY.md's formula written out here once more
/// from the model's shapes.
final class MemoryAccountingTests: XCTestCase {
  // the small preset, B=2, T=64
  let (L, H, C, Vp, maxT, B, T) = (6, 6, 384, 256, 256, 2, 64)

  /// docs/MEMORY.md, by hand: (parameters, gradients, optimizer, activations) bytes per rank.
  func formula(t: Int, d: Int, distributed: Bool) -> [Int] {
    let p = Vp * C / t + maxT * C + L * (12 * C * C / t + 7 * C / t + 6 * C) + 2 * C
    let shards = distributed ? d : 1
    let padded = (p + shards - 1) / shards * shards
    let acts = L * B * T * (4 * C + 12 * C / t + 4) + L * B * (H / t) * T * T + B * T * (5 * C + 8 * C / t + Vp / t + 6)
    return [4 * padded, 4 * padded, 8 * padded / shards, 4 * acts]
  }

  /// "memory rank=R parameters=N (..) gradients=N ..." lines of --memory-report, by rank.
  func reported(_ stdout: String) -> [Int: [String: Int]] {
    var out: [Int: [String: Int]] = [:]
    for line in stdout.split(separator: "\n") where line.hasPrefix("memory rank=") {
      var fields: [String: Int] = [:]
      for word in line.split(separator: " ") {
        let kv = word.split(separator: "=")
        if kv.count == 2, let v = Int(kv[1]) { fields[String(kv[0])] = v }
      }
      if let r = fields["rank"] { out[r] = fields }
    }
    return out
  }

  func testMeasuredBytesMatchTheFormulaWithinTwoPercent() throws {
    let keys = ["parameters", "gradients", "optimizer", "activations"]
    for (t, d, distributed) in [(1, 1, false), (2, 1, false), (1, 2, false), (1, 2, true), (2, 2, false), (2, 2, true), (1, 4, true)] {
      let what = "t=\(t)×d=\(d)\(distributed ? " --distributed-optimizer" : "")"
      let r = try Harness.train(np: t * d, ["--model", "small", "--batch", "\(B)", "--seq", "\(T)", "--tp", "\(t)", "--dp", "\(d)",
                                            "--memory-report", "--no-telemetry", "--threads", "1"] + (distributed ? ["--distributed-optimizer"] : []))
      let ranks = reported(r.stdout)
      XCTAssertEqual(ranks.keys.sorted(), Array(0..<(t * d)), "\(what): one line per rank\n\(r.stdout)")
      let want = formula(t: t, d: d, distributed: distributed)
      for (rank, fields) in ranks {
        for (k, expected) in zip(keys, want) {
          let got = Double(fields[k] ?? -1)
          XCTAssertLessThanOrEqual(abs(got - Double(expected)) / Double(expected), 0.02, "\(what) rank \(rank) \(k): \(got) vs formula \(expected)")
        }
        // the four are resident (written at start) and other is the rest of the resident set
        let known = keys.reduce(0) { $0 + (fields[$1] ?? 0) }
        XCTAssertGreaterThanOrEqual(fields["rss"] ?? 0, known, "\(what) rank \(rank): resident set below the engine's buffers")
        XCTAssertEqual(fields["other"], (fields["rss"] ?? 0) - known, "\(what) rank \(rank): other = rss − the four")
      }
      // the report's own formula line agrees with the one written out here
      let formulaLine = r.stdout.split(separator: "\n").first { $0.hasPrefix("memory formula ") }.map(String.init) ?? ""
      for (k, expected) in zip(keys, want) { XCTAssertTrue(formulaLine.contains("\(k)=\(expected) "), "\(what): \(formulaLine)") }
    }
    // the distributed optimizer halves the optimizer state at d=2 and quarters it at d=4
    let plain = formula(t: 2, d: 2, distributed: false)[2], half = formula(t: 2, d: 2, distributed: true)[2]
    XCTAssertEqual(Double(half) / Double(plain), 0.5, accuracy: 0.001)
  }

  /// The --log lines carry the logging rank's four categories, as --memory-report measures them.
  func testLogCarriesTheMemoryFields() throws {
    let dir = try Harness.tempDir(self)
    let log = dir.appendingPathComponent("log.jsonl").path
    let args = ["--model", "small", "--batch", "\(B)", "--seq", "\(T)", "--tp", "2", "--dp", "2", "--distributed-optimizer",
                "--no-telemetry", "--threads", "1", "--quiet"]
    _ = try Harness.train(np: 4, args + ["--steps", "2", "--log", log])
    let rows = try Harness.readLog(log)
    XCTAssertEqual(rows.count, 2)
    let want = formula(t: 2, d: 2, distributed: true)
    for row in rows {
      for (k, expected) in zip(["param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes"], want) {
        guard let v = (row[k] as? NSNumber)?.doubleValue else { XCTFail("missing \(k) in \(row)"); continue }
        XCTAssertLessThanOrEqual(abs(v - Double(expected)) / Double(expected), 0.02, "\(k) \(v) vs formula \(expected)")
      }
      XCTAssertGreaterThan((row["rss_bytes"] as? NSNumber)?.doubleValue ?? 0, 0)
    }
  }
}

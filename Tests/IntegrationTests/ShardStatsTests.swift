import Foundation
import XCTest

/// The per-shard norms a TP=2 job publishes agree with norms computed from its saved model.
final class ShardStatsTests: XCTestCase {
  func testPublishedShardNormsMatchTheSavedModel() throws {
    let dir = try Harness.tempDir(self)
    let model = dir.appendingPathComponent("m.bin").path
    let before = dir.appendingPathComponent("m5.bin").path
    // the same run stopped one step earlier (deterministic at the same TP size): Δθ of step 6
    _ = try Harness.train(np: 2, ["--model", "tiny", "--batch", "4", "--seq", "32", "--steps", "5", "--tp", "2",
                                  "--no-telemetry", "--save", before, "--quiet"])
    let job = "shardstats-\(getpid())"
    let tptop = Harness.productsDirectory.appendingPathComponent("tptop").path
    defer { _ = try? Harness.run(tptop, ["gc", job]) }
    _ = try Harness.train(np: 2, ["--model", "tiny", "--batch", "4", "--seq", "32", "--steps", "6", "--tp", "2",
                                  "--shard-stats-every", "3", "--job", job, "--save", model, "--quiet"])
    let export = try Harness.run(tptop, ["export", job, "--format", "jsonl"])
    XCTAssertEqual(export.status, 0, export.stderr)
    let rows = try export.stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
      .filter { $0["type"] as? String == "tensor_stats" }
    // steps 1, 3 and 6 on each of the 2 ranks
    XCTAssertEqual(Set(rows.map { ($0["step"] as! NSNumber).intValue }), [1, 3, 6])
    XCTAssertEqual(rows.count, 6)

    // weight norms after the last step, from the checkpoint: L2 C64 H4 V256 maxT64 (llm.c order)
    let (L, C, V, T) = (2, 64, 256, 64)
    let sizes = [V * C, T * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C, L * C, L * C,
                 L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C]
    let replicated: Set<Int> = [1, 2, 3, 7, 8, 9, 13, 14, 15]
    let w = try Harness.floats(model), w5 = try Harness.floats(before)
    var offset = 256
    var full: [Double] = [], delta: [Double] = []
    for n in sizes {
      full.append(w[offset..<(offset + n)].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
      delta.append((offset..<(offset + n)).reduce(0.0) { $0 + Double(w[$1] - w5[$1]) * Double(w[$1] - w5[$1]) }.squareRoot())
      offset += n
    }
    let last = rows.filter { ($0["step"] as! NSNumber).intValue == 6 }
    var perRank: [[Double]] = [[], []], ratios: [[Double]] = [[], []]
    for row in last {
      let rank = (row["rank"] as! NSNumber).intValue
      perRank[rank] = (row["tensors"] as! [[String: Any]]).map { ($0["weight_norm"] as! NSNumber).doubleValue }
      ratios[rank] = (row["tensors"] as! [[String: Any]]).map { ($0["update_ratio"] as! NSNumber).doubleValue }
    }
    XCTAssertEqual(perRank[0].count, 16)
    XCTAssertEqual(perRank[1].count, 16)
    for i in 0..<16 {
      // a replicated tensor is whole on each rank; a split one's shards add up in squares
      let combined = replicated.contains(i) ? perRank[0][i] : (perRank[0][i] * perRank[0][i] + perRank[1][i] * perRank[1][i]).squareRoot()
      XCTAssertEqual(combined, full[i], accuracy: 1e-4 * max(1, full[i]), "tensor \(i)")
      if replicated.contains(i) {
        XCTAssertEqual(perRank[0][i], perRank[1][i], accuracy: 1e-5 * max(1, full[i]))
        // ‖Δθ‖/‖θ‖ of the last step against the difference of the two saved models
        XCTAssertEqual(ratios[0][i], delta[i] / full[i], accuracy: 1e-3 * delta[i] / full[i] + 1e-7, "tensor \(i) update ratio")
      } else {
        let d = ((ratios[0][i] * perRank[0][i]) * (ratios[0][i] * perRank[0][i]) + (ratios[1][i] * perRank[1][i]) * (ratios[1][i] * perRank[1][i])).squareRoot()
        XCTAssertEqual(d, delta[i], accuracy: 1e-3 * delta[i] + 1e-7, "tensor \(i) update norm")
      }
    }
  }
}

import Foundation
import XCTest

/// Every memory and overlap feature at once — sequence parallelism, the distributed optimizer,
/// selective recomputation, overlapped gradient reduction and TP overlap — at t=2×d=2 computes the
/// same model as TP=1 with the whole batch, and its checkpoints cross to a plain t=1×d=1 run and
/// back.
extension TensorParallelEquivalenceTests {
  static let everyFeature = ["--sequence-parallel", "--distributed-optimizer", "--recompute", "selective",
                             "--overlap-grad-reduce", "--overlap-tp", "--bucket-mib", "0.02"]

  /// Ten AdamW steps with clipping: losses and gradient norms within 1e-4 relative of TP=1 at
  /// B=8, every rank's gradient equal to its slice of the TP=1 gradient.
  func testEveryFeatureTogetherTrainsTheSameModelAsTP1() throws {
    let dir = try Harness.tempDir(self)
    let data = dir.appendingPathComponent("tokens.bin").path
    try Harness.corpusTokens(data, vocab: V)
    func run(_ tag: String, tp: Int, dp: Int, batch: Int, _ flags: [String]) throws -> (losses: [Double], norms: [Double]) {
      let log = dir.appendingPathComponent("\(tag).jsonl").path
      _ = try Harness.train(np: tp * dp, modelArgs + optArgs + flags + [
        "--data", data, "--batch", "\(batch)", "--seq", "32", "--steps", "10", "--tp", "\(tp)", "--dp", "\(dp)",
        "--log", log, "--dump-grads", dir.appendingPathComponent(tag).path])
      return (try Harness.losses(log), try Harness.readLog(log).map { ($0["grad_norm"] as! NSNumber).doubleValue })
    }
    let ref = try run("ref", tp: 1, dp: 1, batch: 8, [])
    let all = try run("all", tp: 2, dp: 2, batch: 4, Self.everyFeature)
    XCTAssertEqual(ref.losses.count, 10)
    XCTAssertLessThan(ref.losses[9], ref.losses[0], "loss falls over ten AdamW steps")
    for (a, b) in paired(all.losses, ref.losses, "every feature, losses") {
      XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-4, "every feature: loss \(a) vs TP=1 B=8 \(b)")
    }
    for (a, b) in paired(all.norms, ref.norms, "every feature, gradient norms") {
      XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-4, "every feature: gradient norm \(a) vs TP=1 B=8 \(b)")
    }
    let full = try Harness.floats(dir.appendingPathComponent("ref.rank0.bin").path)
    for rank in 0..<4 {
      let shard = try Harness.floats(dir.appendingPathComponent("all.rank\(rank).bin").path)
      assertClose(shard, expectedShard(full: full, rank: rank % 2, of: 2), "every feature: rank \(rank) gradient")
    }
  }

  /// A t=2×d=2 checkpoint written with every feature resumes at t=1×d=1 with none as the plain
  /// t=2×d=2 checkpoint does, and a plain t=1×d=1 checkpoint resumes at t=2×d=2 with every
  /// feature as without them — within 1e-4 relative.
  func testCheckpointsCrossEveryFeatureBothWays() throws {
    let dir = try Harness.tempDir(self)
    let data = dir.appendingPathComponent("tokens.bin").path
    try Harness.corpusTokens(data, vocab: V)
    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
    func losses(_ name: String) throws -> [Int: Double] {
      Dictionary(uniqueKeysWithValues: try Harness.readLog(path(name)).map {
        (($0["step"] as? Int) ?? -1, ($0["loss"] as? NSNumber)?.doubleValue ?? .nan)
      })
    }
    let common = modelArgs + optArgs + ["--data", data, "--batch", "4", "--seq", "32"]
    let short = ["--steps", "3", "--checkpoint-every", "3"]
    for (name, flags) in [("all", Self.everyFeature), ("plain", [])] {
      _ = try Harness.train(np: 4, common + ["--tp", "2", "--dp", "2"] + flags + short + ["--checkpoint-dir", path("ck22" + name)])
      _ = try Harness.train(np: 1, ["--tp", "1", "--resume", "\(path("ck22" + name))/step_00000003", "--steps", "6",
                                    "--checkpoint-dir", path("to11" + name), "--log", path("to11\(name).jsonl"),
                                    "--quiet", "--no-telemetry"])
    }
    let (a, b) = (try losses("to11all.jsonl"), try losses("to11plain.jsonl"))
    XCTAssertEqual(a.keys.sorted(), Array(4...6))
    for step in 4...6 {
      XCTAssertLessThanOrEqual(relativeDifference(a[step] ?? .nan, b[step] ?? .nan), 1e-4,
                               "step \(step) at t=1×d=1 from the every-feature checkpoint vs the plain one's")
    }
    _ = try Harness.train(np: 1, common + short + ["--checkpoint-dir", path("ck11")])
    for (name, flags) in [("all", Self.everyFeature), ("plain", [])] {
      _ = try Harness.train(np: 4, ["--tp", "2", "--dp", "2", "--resume", "\(path("ck11"))/step_00000003", "--steps", "6",
                                    "--checkpoint-dir", path("back" + name), "--log", path("back\(name).jsonl"),
                                    "--quiet", "--no-telemetry"] + flags)
    }
    let (c, d) = (try losses("backall.jsonl"), try losses("backplain.jsonl"))
    XCTAssertEqual(c.keys.sorted(), Array(4...6))
    for step in 4...6 {
      XCTAssertLessThanOrEqual(relativeDifference(c[step] ?? .nan, d[step] ?? .nan), 1e-4,
                               "step \(step) at t=2×d=2 with every feature vs without, from a t=1 checkpoint")
    }
  }
}

import Foundation
import XCTest

/// Sequence parallelism and activation recomputation compute the same model: against TP=1
/// (losses within 1e-4 over ten AdamW steps, every gradient shard), recomputation bit-identical
/// to keeping everything at the same grid, and checkpoints that cross the flags both ways.
final class SequenceParallelTests: XCTestCase, GradientShardChecks {
  // the equivalence model (L2 H4 C64 maxT64, vocab 200 padded to 256); B·T = 3·20 = 60 rows, so
  // the slices of t=4 (15 rows) and t=2 (30 rows) start inside a sequence
  let (L, H, C, V, Vp, maxT) = (2, 4, 64, 200, 256, 64)
  var modelArgs: [String] { ["--layers", "\(L)", "--heads", "\(H)", "--channels", "\(C)", "--vocab", "\(V)", "--max-seq", "\(maxT)"] }
  let trainArgs = ["--batch", "3", "--seq", "20", "--steps", "10", "--lr", "1e-3", "--weight-decay", "0.1",
                   "--grad-clip", "1.0", "--seed", "42", "--quiet", "--no-telemetry"]
  var dir: URL!
  var data: String { dir.appendingPathComponent("tokens.bin").path }

  override func setUpWithError() throws {
    dir = try Harness.tempDir(self)
    try Harness.corpusTokens(data, vocab: V)
  }

  func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

  /// Trains ten steps at `tp` with `flags`; the log and the step-1 gradient dump are named `tag`.
  @discardableResult
  func run(_ tag: String, tp: Int, _ flags: [String] = []) throws -> [Double] {
    _ = try Harness.train(np: tp, modelArgs + trainArgs + ["--data", data, "--tp", "\(tp)", "--log", path("\(tag).jsonl"),
                                                           "--dump-grads", path(tag)] + flags)
    return try Harness.losses(path("\(tag).jsonl"))
  }

  func gradient(_ tag: String, rank: Int) throws -> [Float] { try Harness.floats(path("\(tag).rank\(rank).bin")) }

  /// `tag` at `tp` against the TP=1 run `ref`: losses within 1e-4 relative, each rank's
  /// gradient shard against its slice of the TP=1 gradient.
  func assertMatchesTP1(_ tag: String, tp: Int, ref: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let full = try gradient(ref, rank: 0)
    let losses = try Harness.losses(path("\(tag).jsonl")), refLosses = try Harness.losses(path("\(ref).jsonl"))
    XCTAssertEqual(losses.count, 10, file: file, line: line)
    for (a, b) in paired(losses, refLosses, "\(tag) losses") {
      XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-4, "\(tag) loss \(a) vs TP=1 \(b)", file: file, line: line)
    }
    for rank in 0..<tp {
      assertClose(try gradient(tag, rank: rank), expectedShard(full: full, rank: rank, of: tp), "\(tag) rank \(rank) gradient")
    }
  }

  func testSequenceParallelTrainsTheSameModelAtTP2AndTP4() throws {
    let ref = try run("tp1", tp: 1)
    XCTAssertLessThan(ref[9], ref[0], "loss falls over ten AdamW steps")
    for tp in [2, 4] {
      try run("sp\(tp)", tp: tp, ["--sequence-parallel"])
      try assertMatchesTP1("sp\(tp)", tp: tp, ref: "tp1")
      // the replicated gradients were summed over TP: every rank holds the same wpe, LayerNorm
      // and row-parallel bias gradients (the first replicated run: wpe, ln1w, ln1b)
      let wpe = (Vp / tp * C)..<(Vp / tp * C + maxT * C + 2 * L * C)
      XCTAssertEqual(Array(try gradient("sp\(tp)", rank: tp - 1)[wpe]), Array(try gradient("sp\(tp)", rank: 0)[wpe]),
                     "t=\(tp): replicated gradients identical on every TP rank")
    }
  }

  /// Recomputation reruns the same kernels on the same inputs: losses (as printed, %.9g) and
  /// gradients are bit-identical to keeping every activation, without and with sequence
  /// parallelism at t=2; every combination also matches TP=1.
  func testRecomputationIsBitIdenticalAndMatchesTP1() throws {
    try run("tp1", tp: 1)
    for sp in [[], ["--sequence-parallel"]] {
      let base = "tp2" + (sp.isEmpty ? "" : "sp")
      try run("\(base)none", tp: 2, sp + ["--recompute", "none"])
      try assertMatchesTP1("\(base)none", tp: 2, ref: "tp1")
      let lossesNone = try Harness.lossStrings(path("\(base)none.jsonl"))
      for mode in ["selective", "full"] {
        let tag = base + mode
        try run(tag, tp: 2, sp + ["--recompute", mode])
        XCTAssertEqual(try Harness.lossStrings(path("\(tag).jsonl")), lossesNone, "\(tag): losses differ from --recompute none")
        for rank in 0..<2 {
          XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("\(tag).rank\(rank).bin"))),
                         try Data(contentsOf: URL(fileURLWithPath: path("\(base)none.rank\(rank).bin"))),
                         "\(tag) rank \(rank): gradient differs from --recompute none")
        }
        try assertMatchesTP1(tag, tp: 2, ref: "tp1")
      }
    }
  }

  /// Checkpoints hold whole tensors whatever the flags: saved with sequence parallelism at t=2,
  /// resumed at t=1 without it, and the other way round, the losses follow the uninterrupted
  /// run within 1e-4 relative.
  func testCheckpointsCrossSequenceParallelism() throws {
    let cases: [(from: (tp: Int, flags: [String]), to: (tp: Int, flags: [String]), tag: String)] = [
      ((2, ["--sequence-parallel", "--recompute", "full"]), (1, []), "sp2to1"),
      ((1, []), (2, ["--sequence-parallel", "--recompute", "selective"]), "tp1tosp2"),
    ]
    for c in cases {
      let ck = path("ck-\(c.tag)")
      _ = try Harness.train(np: c.from.tp, modelArgs + trainArgs + [
        "--data", data, "--tp", "\(c.from.tp)", "--checkpoint-dir", ck, "--checkpoint-every", "5",
        "--log", path("\(c.tag)-full.jsonl")] + c.from.flags)
      _ = try Harness.train(np: c.to.tp, ["--resume", "\(ck)/step_00000005", "--tp", "\(c.to.tp)", "--data", data,
                                          "--checkpoint-dir", path("ck2-\(c.tag)"), "--log", path("\(c.tag)-resumed.jsonl"),
                                          "--quiet", "--no-telemetry"] + c.to.flags)
      let full = try Harness.readLog(path("\(c.tag)-full.jsonl")), resumed = try Harness.readLog(path("\(c.tag)-resumed.jsonl"))
      func byStep(_ log: [[String: Any]]) -> [Int: Double] {
        Dictionary(uniqueKeysWithValues: log.map { (($0["step"] as? Int) ?? -1, ($0["loss"] as? NSNumber)?.doubleValue ?? .nan) })
      }
      let f = byStep(full), r = byStep(resumed)
      XCTAssertEqual(r.keys.sorted(), Array(6...10), "\(c.tag): the resumed run continues at step 6")
      for (step, loss) in r {
        XCTAssertLessThanOrEqual(relativeDifference(loss, f[step] ?? .nan), 1e-4, "\(c.tag) step \(step): \(loss) vs \(f[step] ?? .nan)")
      }
    }
  }
}

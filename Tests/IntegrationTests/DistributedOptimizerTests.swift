import Foundation
import XCTest

/// `--distributed-optimizer` (AdamW's state partitioned over DP): the same model as TP=1 with the
/// whole batch, gradient shards as the plain grid's, checkpoints in the flag-independent global
/// layout (re-sharding both ways, bit-exact resume), the d=1 note.
extension TensorParallelEquivalenceTests {
  /// t=1×d=2 and t=2×d=2 with the flag (the latter also through OpenMPI's collectives), B=4 per
  /// replica, against TP=1 with B=8, ten AdamW steps, with and without --grad-clip: losses and
  /// norms within 1e-4 relative, every rank's (gathered, DP-averaged) gradient equal to its slice
  /// of the TP=1 gradient. T=32 < maxT=64 leaves wpe rows no step writes: a reduce-scatter that
  /// disturbed them would show in the norm from step 2 on.
  func testDistributedOptimizerTrainsTheSameModel() throws {
    let dir = try Harness.tempDir(self)
    let data = dir.appendingPathComponent("tokens.bin").path
    try Harness.corpusTokens(data, vocab: V)
    func run(tp: Int, dp: Int, batch: Int, clip: String, distributed: Bool, extra: [String] = []) throws -> (losses: [Double], norms: [Double], tag: String) {
      let tag = "tp\(tp)dp\(dp)clip\(clip)\(distributed ? "dist" : "")\(extra.joined())"
      let log = dir.appendingPathComponent("\(tag).jsonl").path
      var opts = optArgs
      opts[opts.firstIndex(of: "--grad-clip")! + 1] = clip
      _ = try Harness.train(np: tp * dp, modelArgs + opts + (distributed ? ["--distributed-optimizer"] : []) + extra + [
        "--data", data, "--batch", "\(batch)", "--seq", "32", "--steps", "10", "--tp", "\(tp)", "--dp", "\(dp)",
        "--log", log, "--dump-grads", dir.appendingPathComponent(tag).path])
      let rows = try Harness.readLog(log)
      return (try Harness.losses(log), rows.map { ($0["grad_norm"] as! NSNumber).doubleValue }, tag)
    }
    for clip in ["1.0", "0"] {
      let ref = try run(tp: 1, dp: 1, batch: 8, clip: clip, distributed: false)
      XCTAssertEqual(ref.losses.count, 10)
      let full = try Harness.floats(dir.appendingPathComponent("\(ref.tag).rank0.bin").path)
      for (tp, extra) in [(1, []), (2, []), (2, ["--collectives", "mpi"])] {
        let r = try run(tp: tp, dp: 2, batch: 4, clip: clip, distributed: true, extra: extra)
        let what = "t=\(tp)×d=2 --distributed-optimizer --grad-clip \(clip) \(extra.joined(separator: " "))"
        for (a, b) in paired(r.losses, ref.losses, "\(what) losses") {
          XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-4, "\(what) loss \(a) vs TP=1 B=8 \(b)")
        }
        for (a, b) in paired(r.norms, ref.norms, "\(what) gradient norms") {
          XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-4, "\(what) gradient norm \(a) vs TP=1 B=8 \(b)")
        }
        for rank in 0..<(2 * tp) {
          let shard = try Harness.floats(dir.appendingPathComponent("\(r.tag).rank\(rank).bin").path)
          assertClose(shard, expectedShard(full: full, rank: rank % tp, of: tp), "\(what) rank \(rank) gradient")
        }
      }
    }
  }

  /// At d=1 the flag changes nothing: one note on rank 0 at start-up, and the very losses of the
  /// plain run.
  func testDistributedOptimizerAtOneDPRankIsANoOpWithANote() throws {
    let dir = try Harness.tempDir(self)
    func run(_ extra: [String]) throws -> (Harness.Result, [String]) {
      let log = dir.appendingPathComponent("d1\(extra.count).jsonl").path
      let r = try Harness.train(np: 2, ["--model", "tiny", "--batch", "4", "--seq", "32", "--steps", "3", "--tp", "2",
                                        "--no-telemetry", "--log", log] + extra)
      let strings = try Harness.lossStrings(log)
      return (r, strings.keys.sorted().map { strings[$0]! })
    }
    let (plain, plainLosses) = try run([])
    let (flagged, flaggedLosses) = try run(["--distributed-optimizer"])
    let note = "tptrain: note: --distributed-optimizer at dp 1 is a no-op: there is no other DP rank to share the optimizer state with"
    XCTAssertEqual(flagged.stderr.components(separatedBy: "\n").filter { $0 == note }.count, 1, flagged.stderr)
    XCTAssertFalse(plain.stderr.contains("--distributed-optimizer"), plain.stderr)
    XCTAssertEqual(flaggedLosses.count, 3)
    XCTAssertEqual(flaggedLosses, plainLosses, "the flag at d=1 trains exactly as without it")
  }
}

extension CheckpointTests {
  func losses(_ log: String) throws -> [Int: Double] {
    Dictionary(uniqueKeysWithValues: try Harness.readLog(log).map {
      (($0["step"] as? Int) ?? -1, ($0["loss"] as? NSNumber)?.doubleValue ?? .nan)
    })
  }

  /// Same flags, same grid (t=2×d=2 with --distributed-optimizer): a resumed run's losses are
  /// bit-identical to the uninterrupted run's.
  func testExactResumeWithDistributedOptimizer() throws {
    let ck = path("ck")
    let grid = ["--tp", "2", "--dp", "2", "--distributed-optimizer"]
    _ = try Harness.train(np: 4, common + grid + ["--steps", "8", "--checkpoint-dir", ck, "--checkpoint-every", "4",
                                                  "--log", path("full.jsonl")])
    _ = try Harness.train(np: 4, grid + ["--resume", "\(ck)/step_00000004", "--checkpoint-dir", path("ck2"),
                                         "--log", path("resumed.jsonl"), "--quiet", "--no-telemetry"])
    let full = try lossStrings(path("full.jsonl")), resumed = try lossStrings(path("resumed.jsonl"))
    XCTAssertEqual(resumed.keys.sorted(), Array(5...8))
    for step in 5...8 {
      XCTAssertEqual(resumed[step], full[step], "step \(step): resumed loss differs from the uninterrupted run")
    }
  }

  /// The optimizer state is stored in the global layout whatever the flags: a checkpoint of
  /// t=2×d=2 with the distributed optimizer holds the plain run's m and v (within float
  /// rounding), resumes at t=1×d=1 without the flag as the plain checkpoint does, and a
  /// t=1×d=1 checkpoint resumes at t=2×d=2 with the flag as without it — within 1e-4.
  func testCheckpointsReshardAcrossTheDistributedOptimizer() throws {
    let short = ["--steps", "3", "--checkpoint-every", "3"]
    // step 3 at t=2×d=2, with and without the flag
    for (name, flag) in [("dist", ["--distributed-optimizer"]), ("plain", [])] {
      _ = try Harness.train(np: 4, common + ["--tp", "2", "--dp", "2"] + flag + short + ["--checkpoint-dir", path("ck22" + name)])
    }
    let saved = ["dist", "plain"].map { "\(path("ck22" + $0))/step_00000003" }
    for (file, header) in [("model.bin", 1024), ("state.bin", 4096)] {
      let a = try Data(contentsOf: URL(fileURLWithPath: "\(saved[0])/\(file)"))
      let b = try Data(contentsOf: URL(fileURLWithPath: "\(saved[1])/\(file)"))
      XCTAssertEqual(a.count, b.count, file)
      let (fa, fb) = (floats(a.dropFirst(header)), floats(b.dropFirst(header)))
      var worst = 0.0
      for (x, y) in paired(fa, fb, file) { worst = max(worst, Double(abs(x - y)) / (1e-6 + Double(abs(y)))) }
      XCTAssertLessThanOrEqual(worst, 1e-3, "\(file) with the distributed optimizer vs without")
    }
    // both resume at t=1×d=1 without the flag
    for (i, ck) in saved.enumerated() {
      _ = try Harness.train(np: 1, ["--tp", "1", "--resume", ck, "--steps", "6", "--checkpoint-dir", path("ck11_\(i)"),
                                    "--log", path("to11_\(i).jsonl"), "--quiet", "--no-telemetry"])
    }
    let (a, b) = (try losses(path("to11_0.jsonl")), try losses(path("to11_1.jsonl")))
    XCTAssertEqual(a.keys.sorted(), Array(4...6))
    for step in 4...6 {
      XCTAssertLessThanOrEqual(relativeDifference(a[step] ?? .nan, b[step] ?? .nan), 1e-4,
                               "step \(step) at t=1×d=1 from the distributed optimizer's checkpoint vs the plain one's")
    }
    // and back: a plain t=1×d=1 checkpoint resumes at t=2×d=2 with the flag as without it
    _ = try Harness.train(np: 1, common + short + ["--checkpoint-dir", path("ck11")])
    for (name, flag) in [("dist", ["--distributed-optimizer"]), ("plain", [])] {
      _ = try Harness.train(np: 4, ["--tp", "2", "--dp", "2", "--resume", "\(path("ck11"))/step_00000003", "--steps", "6",
                                    "--checkpoint-dir", path("back" + name), "--log", path("back\(name).jsonl"),
                                    "--quiet", "--no-telemetry"] + flag)
    }
    let (c, d) = (try losses(path("backdist.jsonl")), try losses(path("backplain.jsonl")))
    XCTAssertEqual(c.keys.sorted(), Array(4...6))
    for step in 4...6 {
      XCTAssertLessThanOrEqual(relativeDifference(c[step] ?? .nan, d[step] ?? .nan), 1e-4,
                               "step \(step) at t=2×d=2 with the distributed optimizer vs without, from a t=1 checkpoint")
    }
  }

  private func floats(_ d: Data) -> [Float] {
    d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
  }
}

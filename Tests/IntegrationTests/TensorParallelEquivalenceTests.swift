import Foundation
import XCTest

/// Megatron-style equivalence: the same seed at TP=1, 2 and 4 (and TP=2 × DP=2) trains the same
/// model — same losses, and every gradient shard equals its slice of the TP=1 gradient.
final class TensorParallelEquivalenceTests: XCTestCase, GradientShardChecks {
  // L2 H4 C64 maxT64, vocab 200 padded to 256: rank 1 of 2 and rank 3 of 4 own padded rows.
  let (L, H, C, V, Vp, maxT) = (2, 4, 64, 200, 256, 64)
  var modelArgs: [String] { ["--layers", "\(L)", "--heads", "\(H)", "--channels", "\(C)", "--vocab", "\(V)", "--max-seq", "\(maxT)"] }
  let optArgs = ["--lr", "1e-3", "--weight-decay", "0.1", "--grad-clip", "1.0", "--seed", "42", "--quiet", "--no-telemetry"]

  func testTensorParallelSizesTrainTheSameModel() throws {
    let dir = try Harness.tempDir(self)
    let data = dir.appendingPathComponent("tokens.bin").path
    try Harness.corpusTokens(data, vocab: V)
    func run(tp: Int, dp: Int = 1, batch: Int = 4, clip: String = "1.0") throws -> (losses: [Double], tag: String) {
      let tag = "tp\(tp)dp\(dp)"
      let log = dir.appendingPathComponent("\(tag).jsonl").path
      var opts = optArgs
      opts[opts.firstIndex(of: "--grad-clip")! + 1] = clip
      _ = try Harness.train(np: tp * dp, modelArgs + opts + [
        "--data", data, "--batch", "\(batch)", "--seq", "32", "--steps", "5", "--tp", "\(tp)", "--dp", "\(dp)",
        "--log", log, "--dump-grads", dir.appendingPathComponent(tag).path])
      return (try Harness.losses(log), tag)
    }
    let ref = try run(tp: 1)
    XCTAssertEqual(ref.losses.count, 5)
    XCTAssertLessThan(ref.losses[4], ref.losses[0], "loss falls over 5 AdamW steps")
    let full = try Harness.floats(dir.appendingPathComponent("tp1dp1.rank0.bin").path)

    for tp in [2, 4] {
      let r = try run(tp: tp)
      for (a, b) in paired(r.losses, ref.losses, "TP=\(tp) losses") {
        XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-4, "TP=\(tp) loss \(a) vs TP=1 \(b)")
      }
      for rank in 0..<tp {
        let shard = try Harness.floats(dir.appendingPathComponent("\(r.tag).rank\(rank).bin").path)
        assertClose(shard, expectedShard(full: full, rank: rank, of: tp), "TP=\(tp) rank \(rank) gradient")
      }
    }

    // TP=2 × DP=2 with B=4 per replica equals TP=1 with B=8 (replica j = j-th block of the window)
    func norms(_ tag: String) throws -> [Double] {
      try Harness.readLog(dir.appendingPathComponent("\(tag).jsonl").path).map { ($0["grad_norm"] as! NSNumber).doubleValue }
    }
    let ref8 = try run(tp: 1, batch: 8)
    let ref8Norms = try norms(ref8.tag)
    let full8 = try Harness.floats(dir.appendingPathComponent("tp1dp1.rank0.bin").path)
    let grid = try run(tp: 2, dp: 2)
    for (a, b) in paired(grid.losses, ref8.losses, "TP2×DP2 losses") {
      XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-4, "TP2×DP2 loss \(a) vs TP=1 B=8 \(b)")
    }
    for (a, b) in paired(try norms(grid.tag), ref8Norms, "TP2×DP2 gradient norms") {
      XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-4, "TP2×DP2 gradient norm \(a) vs TP=1 B=8 \(b)")
    }
    for rank in 0..<4 {
      let shard = try Harness.floats(dir.appendingPathComponent("tp2dp2.rank\(rank).bin").path)
      assertClose(shard, expectedShard(full: full8, rank: rank % 2, of: 2), "TP2×DP2 rank \(rank) gradient")
    }
    // without clipping the DP average reaches AdamW and the reported norm through the sweep's
    // gradScale (AdamW itself hardly sees a gradient scale, so the norms are the sharper check)
    let ref8free = try run(tp: 1, batch: 8, clip: "0")
    let refNorms = try norms(ref8free.tag)
    let gridFree = try run(tp: 2, dp: 2, clip: "0")
    let gridNorms = try norms(gridFree.tag)
    XCTAssertNotEqual(ref8free.losses[4], ref8.losses[4], "clipping was active in the clipped runs")
    XCTAssertEqual(gridNorms.count, 5)
    for (a, b) in paired(gridFree.losses, ref8free.losses, "TP2×DP2 unclipped losses") {
      XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-4, "TP2×DP2 unclipped loss \(a) vs TP=1 B=8 \(b)")
    }
    for (a, b) in paired(gridNorms, refNorms, "TP2×DP2 unclipped gradient norms") {
      XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-4, "TP2×DP2 unclipped gradient norm \(a) vs TP=1 B=8 \(b)")
    }
  }

  /// A rank's threads (OpenBLAS plus the pool that splits the other kernels) change only the
  /// order of a few sums: the same run on 1 and 3 threads trains the same model.
  func testThreadsPerRankTrainTheSameModel() throws {
    let dir = try Harness.tempDir(self)
    let data = dir.appendingPathComponent("tokens.bin").path
    try Harness.corpusTokens(data, vocab: V)
    func run(threads: Int) throws -> [Double] {
      let log = dir.appendingPathComponent("t\(threads).jsonl").path
      _ = try Harness.train(np: 1, modelArgs + optArgs + [
        "--data", data, "--batch", "4", "--seq", "32", "--steps", "5", "--threads", "\(threads)",
        "--log", log, "--dump-grads", dir.appendingPathComponent("t\(threads)").path])
      return try Harness.losses(log)
    }
    let one = try run(threads: 1), three = try run(threads: 3)
    XCTAssertEqual(one.count, 5)
    for (a, b) in paired(three, one, "3-thread vs 1-thread losses") {
      XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-5, "3 threads loss \(a) vs 1 thread \(b)")
    }
    assertClose(try Harness.floats(dir.appendingPathComponent("t3.rank0.bin").path),
                try Harness.floats(dir.appendingPathComponent("t1.rank0.bin").path), "3-thread gradient")
  }

  func testSameSeedSavesTheSameModelAtEveryTPSize() throws {
    let dir = try Harness.tempDir(self)
    var files: [Data] = []
    for tp in [1, 2, 4] {
      let path = dir.appendingPathComponent("init\(tp).bin").path
      _ = try Harness.train(np: tp, modelArgs + ["--seed", "7", "--steps", "0", "--tp", "\(tp)", "--save", path, "--quiet", "--no-telemetry"])
      files.append(try Data(contentsOf: URL(fileURLWithPath: path)))
    }
    XCTAssertEqual(files[0].count, 1024 + 4 * (Vp * C + maxT * C + L * 12 * C * C + L * 13 * C + 2 * C))
    XCTAssertEqual(files[0], files[1], "TP=2 init differs from TP=1")
    XCTAssertEqual(files[0], files[2], "TP=4 init differs from TP=1")
    // header: magic, version, maxT, V, L, H, C, Vp
    let header = files[0].withUnsafeBytes { Array($0.bindMemory(to: Int32.self).prefix(8)) }
    XCTAssertEqual(header, [20240326, 3, Int32(maxT), Int32(V), Int32(L), Int32(H), Int32(C), Int32(Vp)])
    // padded wte rows are zero
    let w = files[0].withUnsafeBytes { Array($0.bindMemory(to: Float.self)[256..<(256 + Vp * C)]) }
    XCTAssertTrue(w[(V * C)...].allSatisfy { $0 == 0 })
    XCTAssertFalse(w[..<(V * C)].allSatisfy { $0 == 0 })
  }

  func testCheckpointSavedAtTP2LoadsAtTP1AndTP4() throws {
    let dir = try Harness.tempDir(self)
    let data = dir.appendingPathComponent("tokens.bin").path
    try Harness.corpusTokens(data, vocab: V)
    let ckpt = dir.appendingPathComponent("tp2.bin").path
    _ = try Harness.train(np: 2, modelArgs + optArgs + ["--data", data, "--batch", "4", "--seq", "32", "--steps", "3", "--tp", "2", "--save", ckpt])
    var losses: [Int: [Double]] = [:]
    for tp in [1, 2, 4] {
      let log = dir.appendingPathComponent("from\(tp).jsonl").path
      _ = try Harness.train(np: tp, ["--init-from", ckpt, "--data", data, "--batch", "4", "--seq", "32", "--steps", "2",
                                     "--tp", "\(tp)", "--log", log, "--quiet", "--no-telemetry"])
      losses[tp] = try Harness.losses(log)
    }
    for tp in [1, 4] {
      for (a, b) in paired(losses[tp]!, losses[2]!, "losses loaded at TP=\(tp)") {
        XCTAssertLessThanOrEqual(relativeDifference(a, b), 1e-5, "loaded at TP=\(tp): \(a) vs TP=2 \(b)")
      }
    }
    // a trained checkpoint re-saved at TP=4 is the same file
    let resaved = dir.appendingPathComponent("tp4.bin").path
    _ = try Harness.train(np: 4, ["--init-from", ckpt, "--data", data, "--steps", "0", "--tp", "4", "--save", resaved, "--quiet", "--no-telemetry"])
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: resaved)), try Data(contentsOf: URL(fileURLWithPath: ckpt)))
  }

  func testLogHasOneObjectPerStepWithTheDocumentedFields() throws {
    let dir = try Harness.tempDir(self)
    let log = dir.appendingPathComponent("log.jsonl").path
    let r = try Harness.train(np: 2, ["--model", "tiny", "--batch", "2", "--seq", "16", "--steps", "3", "--tp", "2", "--log", log, "--no-telemetry"])
    let rows = try Harness.readLog(log)
    XCTAssertEqual(rows.map { ($0["step"] as? NSNumber)?.intValue }, [1, 2, 3])
    for row in rows {
      for key in ["loss", "lr", "step_ms", "tokens_per_s", "forward_ms", "backward_ms", "optimizer_ms", "comm_ms", "allreduce_count",
                  "comm_exposed_ms", "comm_total_ms", "comm_peer_wait_ms"] {
        XCTAssertNotNil(row[key] as? NSNumber, "missing \(key) in \(row)")
      }
      // blocking collectives only: all communication is exposed, and it fits in the step
      let (exposed, total) = ((row["comm_exposed_ms"] as! NSNumber).doubleValue, (row["comm_total_ms"] as! NSNumber).doubleValue)
      XCTAssertEqual(exposed, total, accuracy: 1e-3)
      XCTAssertLessThanOrEqual(total, (row["step_ms"] as! NSNumber).doubleValue)
      XCTAssertLessThanOrEqual((row["comm_peer_wait_ms"] as! NSNumber).doubleValue, exposed + 1e-4)
      // 1 embedding + 2 per layer + 2 cross-entropy forward, 1 LM head + 2 per layer backward, 1 norm
      XCTAssertEqual((row["allreduce_count"] as? NSNumber)?.intValue, 1 + 2 * 2 + 2 + 1 + 2 * 2 + 1)
    }
    // rank 0 prints one human line per step
    XCTAssertEqual(r.stdout.split(separator: "\n").filter { $0.hasPrefix("step ") }.count, 3)
  }
}

extension TensorParallelEquivalenceTests {
  /// Every `--log` line carries the wall clock as `tptop export` writes it: `unix_ns` inside the
  /// run, and `time` the same instant in ISO 8601 UTC with milliseconds.
  func testLogLinesCarryTheWallClock() throws {
    let dir = try Harness.tempDir(self)
    let log = dir.appendingPathComponent("clock.jsonl").path
    let before = Int64(Date().timeIntervalSince1970 * 1e9)
    _ = try Harness.train(np: 1, ["--model", "tiny", "--steps", "3", "--batch", "2", "--seq", "16", "--no-telemetry", "--quiet",
                                  "--log", log])
    let after = Int64(Date().timeIntervalSince1970 * 1e9)
    let rows = try Harness.readLog(log)
    XCTAssertEqual(rows.count, 3)
    let format = DateFormatter()
    format.locale = Locale(identifier: "en_US_POSIX")
    format.timeZone = TimeZone(identifier: "UTC")
    format.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    var last: Int64 = 0
    for row in rows {
      let ns = try XCTUnwrap((row["unix_ns"] as? NSNumber)?.int64Value, "\(row)")
      XCTAssertGreaterThanOrEqual(ns, before)
      XCTAssertLessThanOrEqual(ns, after)
      XCTAssertGreaterThanOrEqual(ns, last, "the lines' times go forward")
      last = ns
      let millis = ns / 1_000_000
      let want = format.string(from: Date(timeIntervalSince1970: Double(millis / 1000) + Double(millis % 1000) / 1000 + 0.0001))
      XCTAssertEqual(row["time"] as? String, want)
    }
  }
}

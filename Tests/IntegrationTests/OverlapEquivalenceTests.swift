import Foundation
import XCTest

/// Communication overlap changes when collectives run, not what they compute: with
/// --overlap-grad-reduce, --overlap-tp and both, at t=2, d=2 and t=2×d=2 (and d=3, where the
/// ring's order differs by chunk), every loss, gradient norm and gradient shard is bitwise that
/// of the plain run; the log's exposed communication never exceeds the in-flight time, nor that
/// the step. (--overlap-tp cuts GEMMs into row pieces: bitwise on OpenBLAS's AVX-512 kernels;
/// on its AVX2 ones within 1e-6, see `assertSameModel`.)
final class OverlapEquivalenceTests: XCTestCase {
  /// `rows` and `grads` (a run's log and gradient dumps) against `base`'s: bitwise, or when
  /// `bitwise` is false (GEMMs cut into pieces on kernels that round a row by its place in the
  /// call, `Harness.rowStableBLAS`) losses and norms within 1e-6 relative and every gradient
  /// element within 1e-6 of its shard's largest.
  func assertSameModel(_ tag: String, _ rows: [[String: Any]], _ grads: [Data],
                       as base: (rows: [[String: Any]], grads: [Data]), bitwise: Bool,
                       file: StaticString = #filePath, line: UInt = #line) {
    for key in ["loss", "grad_norm"] {
      let (a, b) = (rows.map { ($0[key] as! NSNumber).doubleValue }, base.rows.map { ($0[key] as! NSNumber).doubleValue })
      if bitwise {
        XCTAssertEqual(a, b, "\(tag): \(key) differs", file: file, line: line)
      } else {
        for (x, y) in paired(a, b, "\(tag) \(key)") {
          XCTAssertEqual(x, y, accuracy: 1e-6 * abs(y), "\(tag): \(key) differs by more than 1e-6", file: file, line: line)
        }
      }
    }
    for (r, (a, b)) in paired(grads, base.grads, "\(tag) gradient shards").enumerated() {
      if bitwise {
        XCTAssertTrue(a == b, "\(tag): rank \(r)'s gradient shard is not bitwise the same", file: file, line: line)
        continue
      }
      let (x, y) = (a.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, b.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) })
      let scale = y.reduce(Float(0)) { max($0, abs($1)) }
      let worst = zip(x, y).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
      XCTAssertEqual(x.count, y.count, "\(tag): rank \(r)'s gradient shard length", file: file, line: line)
      XCTAssertLessThanOrEqual(worst, 1e-6 * scale, "\(tag): rank \(r)'s gradient shard differs", file: file, line: line)
    }
  }

  /// Trains `tiny` for 3 steps on `np` ranks with `args`, a log and gradient dumps named `tag`;
  /// checks every step's communication figures (exposed > 0, exposed ≤ in flight ≤ step, peer
  /// wait ≤ exposed) and returns the log, the gradient shards, and the hidden (in flight but not
  /// exposed) time summed over the steps.
  func train(_ dir: URL, _ tag: String, np: Int, _ args: [String],
             file: StaticString = #filePath, line: UInt = #line) throws -> (rows: [[String: Any]], grads: [Data], hidden: Double) {
    let log = dir.appendingPathComponent("\(tag).jsonl").path
    let r = try Harness.train(np: np, ["--model", "tiny", "--steps", "3", "--seed", "5", "--quiet", "--no-telemetry",
                                       "--log", log, "--dump-grads", dir.appendingPathComponent(tag).path] + args,
                              file: file, line: line)
    // the only notes are for a flag that has no other rank to work with on this grid
    for note in r.stderr.split(separator: "\n") where note.contains("note:") {
      XCTAssertTrue(note.contains("is a no-op"), "\(tag): \(note)", file: file, line: line)
    }
    let rows = try Harness.readLog(log)
    let grads = try (0..<np).map { try Data(contentsOf: dir.appendingPathComponent("\(tag).rank\($0).bin")) }
    XCTAssertEqual(rows.count, 3, tag, file: file, line: line)
    var hidden = 0.0
    for row in rows {
      let exposed = (row["comm_exposed_ms"] as! NSNumber).doubleValue
      let total = (row["comm_total_ms"] as! NSNumber).doubleValue
      let step = (row["step_ms"] as! NSNumber).doubleValue
      let peer = (row["comm_peer_wait_ms"] as! NSNumber).doubleValue
      XCTAssertGreaterThan(exposed, 0, "\(tag): collectives ran", file: file, line: line)
      XCTAssertLessThanOrEqual(exposed, total + 1e-4, "\(tag): exposed ≤ in flight", file: file, line: line)
      XCTAssertLessThanOrEqual(total, step + 1e-4, "\(tag): in flight ≤ step", file: file, line: line)
      XCTAssertLessThanOrEqual(peer, exposed + 1e-4, "\(tag): peer wait is part of the exposed time", file: file, line: line)
      hidden += total - exposed
    }
    return (rows, grads, hidden)
  }

  func testOverlapFlagsTrainBitwiseTheSameModel() throws {
    let dir = try Harness.tempDir(self)
    let variants: [(name: String, flags: [String])] = [
      ("plain", []),
      // small buckets: many of them, started at different points of the backward
      ("grad", ["--overlap-grad-reduce", "--bucket-mib", "0.02"]),
      ("tp", ["--overlap-tp", "--tp-chunks", "3"]),
      ("both", ["--overlap-grad-reduce", "--bucket-mib", "0.05", "--overlap-tp"]),
      // OpenMPI's MPI_Iallreduce per range: over two ranks a sum is a + b whatever the algorithm
      ("mpi", ["--collectives", "mpi", "--overlap-grad-reduce", "--bucket-mib", "0.02", "--overlap-tp"]),
    ]
    for (tp, dp) in [(2, 1), (1, 2), (2, 2), (1, 3)] {
      var plain: (rows: [[String: Any]], grads: [Data])? = nil
      for v in variants where (tp > 1 || v.name != "tp") && (dp > 1 || v.name != "grad") && (dp < 3 || v.name != "both")
      && (v.name != "mpi" || (tp, dp) == (2, 2)) {
        let tag = "t\(tp)d\(dp)-\(v.name)"
        let (rows, grads, hidden) = try train(dir, tag, np: tp * dp, ["--batch", "4", "--seq", "32", "--tp", "\(tp)", "--dp", "\(dp)"] + v.flags)
        if v.name == "plain" {
          // every collective blocks: nothing is hidden
          XCTAssertEqual(hidden, 0, accuracy: 1e-3, "\(tag): hidden communication without overlap")
          plain = (rows, grads)
          continue
        }
        if v.name == "grad" || (v.name != "tp" && dp > 1) {
          XCTAssertGreaterThan(hidden, 0, "\(tag): some gradient reduction ran behind the backward")
        }
        guard let plain else { return XCTFail("no plain run") }
        assertSameModel("\(tag) against the plain run", rows, grads, as: plain,
                        bitwise: Harness.rowStableBLAS || tp == 1 || !v.flags.contains("--overlap-tp"))
      }
    }
  }

  /// Under sequence parallelism `--overlap-tp` pipelines the all-gathers before the
  /// column-parallel GEMMs and the reduce-scatters after the row-parallel ones (and the backward's
  /// gather and reduce-scatter of the column-parallel input): every loss, norm and gradient shard
  /// is bitwise (see `assertSameModel`) that of `--sequence-parallel` alone, at t=2, t=4 (ring steps that carry other
  /// ranks' rows, chunks that straddle rank blocks) and t=2×d=2, with the ring and with OpenMPI's
  /// collectives over two ranks.
  func testOverlapTPUnderSequenceParallelIsBitwise() throws {
    let dir = try Harness.tempDir(self)
    let variants: [(name: String, flags: [String])] = [
      ("plain", []),
      ("chunks3", ["--overlap-tp", "--tp-chunks", "3"]),
      ("chunks8", ["--overlap-tp", "--tp-chunks", "8"]),
      ("mpi", ["--collectives", "mpi", "--overlap-tp", "--tp-chunks", "4"]),
    ]
    for (tp, dp) in [(2, 1), (4, 1), (2, 2)] {
      var plain: (rows: [[String: Any]], grads: [Data])? = nil
      for v in variants where v.name != "mpi" || tp == 2 {
        let tag = "sp-t\(tp)d\(dp)-\(v.name)"
        // 512 token rows: pieces of 64 rows and more, several per rank's block
        let (rows, grads, hidden) = try train(dir, tag, np: tp * dp, ["--batch", "8", "--seq", "64", "--tp", "\(tp)",
                                                                      "--dp", "\(dp)", "--sequence-parallel"] + v.flags)
        guard let base = plain else {
          XCTAssertEqual(hidden, 0, accuracy: 1e-3, "\(tag): hidden communication without overlap")
          plain = (rows, grads)
          continue
        }
        XCTAssertGreaterThan(hidden, 0, "\(tag): some TP communication ran behind the GEMMs")
        assertSameModel("\(tag) against --sequence-parallel alone", rows, grads, as: base, bitwise: Harness.rowStableBLAS)
      }
    }
  }

  /// --overlap-grad-reduce under the distributed optimizer (bucketed reduce-scatters into the
  /// optimizer's blocks; at d=3 the ring order differs by chunk and the buffer is padded), under sequence
  /// parallelism (replicated slices summed over TP before their bucket) and under both, ring and
  /// mpi: every loss, gradient norm and gradient shard is bitwise that of the same flags without
  /// it, and some of the DP reduction ran behind the backward.
  func testGradReduceOverlapsUnderDistributedOptimizerAndSequenceParallel() throws {
    let dir = try Harness.tempDir(self)
    let cases: [(tp: Int, dp: Int, name: String, flags: [String])] = [
      (1, 2, "distopt", ["--distributed-optimizer"]),
      (2, 2, "distopt", ["--distributed-optimizer"]),
      // 120 640 parameters: padded by 2 to a multiple of 3, so the blocks are not the unpadded ring's chunks
      (1, 3, "distopt-padded", ["--distributed-optimizer", "--max-seq", "65"]),
      (2, 2, "sp", ["--sequence-parallel"]),
      (2, 2, "sp-distopt", ["--sequence-parallel", "--distributed-optimizer"]),
      // OpenMPI's MPI_Iallreduce per range (TP and DP): over two ranks a sum is a + b whatever the algorithm
      (2, 2, "sp-distopt-mpi", ["--sequence-parallel", "--distributed-optimizer", "--collectives", "mpi"]),
    ]
    for c in cases {
      var runs: [(rows: [[String: Any]], grads: [Data], hidden: Double)] = []
      for overlap in [false, true] {
        let tag = "t\(c.tp)d\(c.dp)-\(c.name)\(overlap ? "-overlap" : "")"
        runs.append(try train(dir, tag, np: c.tp * c.dp, ["--batch", "4", "--seq", "32", "--tp", "\(c.tp)", "--dp", "\(c.dp)"]
                              + c.flags + (overlap ? ["--overlap-grad-reduce", "--bucket-mib", "0.02"] : [])))
      }
      let tag = "t\(c.tp)d\(c.dp)-\(c.name)"
      let (plain, overlapped) = (runs[0], runs[1])
      XCTAssertEqual(plain.hidden, 0, accuracy: 1e-3, "\(tag): hidden communication without overlap")
      XCTAssertGreaterThan(overlapped.hidden, 0, "\(tag): some gradient reduction ran behind the backward")
      // no GEMM is cut: bitwise on every BLAS
      assertSameModel("\(tag) against the run without --overlap-grad-reduce", overlapped.rows, overlapped.grads,
                      as: (plain.rows, plain.grads), bitwise: true)
    }
  }

  /// Every subsystem that has reductions of its own in flight runs them on its own duplicate of
  /// the group, so no two can take each other's messages. The case that once could: with
  /// `--sequence-parallel --overlap-tp --overlap-grad-reduce` at 256 chunks over 8192 token rows
  /// (128 pieces of 64 rows), the TP overlap's 129 reductions and the replicated slices' TP sums
  /// were in flight on the TP group together, with hand-picked tags that overlapped (7199–7327
  /// and 7300–7375). The run matches `--sequence-parallel` alone (see `assertSameModel`), and its
  /// start-up line says 128 chunks were used.
  func testOverlapAt256ChunksUnderSequenceParallelWithBucketsMatchesThePlainRun() throws {
    let dir = try Harness.tempDir(self)
    let grid = ["--batch", "128", "--seq", "64", "--tp", "2", "--dp", "2", "--sequence-parallel"]
    let plain = try train(dir, "plain", np: 4, grid)
    let log = dir.appendingPathComponent("all.jsonl").path
    let flags = ["--overlap-tp", "--tp-chunks", "256", "--overlap-grad-reduce", "--bucket-mib", "0.01"]
    let r = try Harness.train(np: 4, ["--model", "tiny", "--steps", "3", "--seed", "5", "--no-telemetry", "--log", log,
                                      "--dump-grads", dir.appendingPathComponent("all").path] + grid + flags)
    XCTAssertTrue(r.stdout.contains("overlap-tp ×128 (of 256 asked"), r.stdout)
    let rows = try Harness.readLog(log)
    let grads = try (0..<4).map { try Data(contentsOf: dir.appendingPathComponent("all.rank\($0).bin")) }
    XCTAssertEqual(rows.count, 3)
    assertSameModel("SP + overlap-tp ×128 + buckets against SP alone", rows, grads, as: (plain.rows, plain.grads),
                    bitwise: Harness.rowStableBLAS)
  }

  func testBadOverlapValuesAreOneLineErrors() throws {
    for (flags, message) in [
      (["--overlap-grad-reduce", "--bucket-mib", "0"], "--bucket-mib must be a finite number > 0 and ≤ 65536, not 0"),
      (["--overlap-grad-reduce", "--bucket-mib", "1e30"], "--bucket-mib must be a finite number > 0 and ≤ 65536, not 1e+30"),
      (["--overlap-tp", "--tp-chunks", "0"], "--tp-chunks must be between 1 and 256, not 0"),
      (["--overlap-tp", "--tp-chunks", "9223372036854775807"], "--tp-chunks must be between 1 and 256, not 9223372036854775807"),
    ] {
      let r = try Harness.mpirun(np: 2, ["--model", "tiny", "--steps", "1", "--no-telemetry"] + flags)
      XCTAssertNotEqual(r.status, 0)
      XCTAssertEqual(r.stderr.components(separatedBy: message).count - 1, 1, "one line from one rank: \(r.stderr)")
    }
    // a value that does not parse: ArgumentParser's error, printed by world rank 0 only
    let text = try Harness.mpirun(np: 2, ["--model", "tiny", "--steps", "1", "--no-telemetry", "--overlap-tp", "--tp-chunks", "abc"])
    XCTAssertNotEqual(text.status, 0)
    XCTAssertEqual(text.stderr.components(separatedBy: "The value 'abc' is invalid for '--tp-chunks").count - 1, 1, text.stderr)
  }

  /// The start-up line names the chunks --overlap-tp really cuts the rows into, and says so
  /// when they are fewer than asked (chunks are at least 64 rows).
  func testStartUpLineNamesTheChunksUsed() throws {
    let few = try Harness.mpirun(np: 2, ["--model", "tiny", "--steps", "1", "--no-telemetry", "--tp", "2", "--batch", "2",
                                         "--seq", "64", "--overlap-tp", "--tp-chunks", "8"])
    XCTAssertEqual(few.status, 0, few.stderr)
    XCTAssertTrue(few.stdout.contains("overlap-tp ×2 (of 8 asked: chunks are ≥ 64 of the 128 rows)"), few.stdout)
    let all = try Harness.mpirun(np: 4, ["--model", "tiny", "--steps", "1", "--no-telemetry", "--tp", "2", "--dp", "2",
                                         "--batch", "4", "--seq", "64", "--overlap-tp", "--distributed-optimizer"])
    XCTAssertEqual(all.status, 0, all.stderr)
    XCTAssertTrue(all.stdout.contains("| distopt ×2 | overlap-tp ×4\n") || all.stdout.contains("| distopt ×2 | overlap-tp ×4 "), all.stdout)
  }
}

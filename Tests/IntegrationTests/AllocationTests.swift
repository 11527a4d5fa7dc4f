import Foundation
import TestSupport
import XCTest

/// The training step does not allocate: a counting malloc preload (Tests/Fixtures/alloccount.c)
/// counts the allocations of the training thread and the worker pool's threads in every step
/// after the first.
final class AllocationTests: XCTestCase {
  func buildPreload(_ dir: URL) throws -> String {
    let cc = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) }
    guard let cc else { throw MissingTool.error("a C compiler (cc, gcc or clang) to build the counting preload") }
    let so = dir.appendingPathComponent("alloccount.so").path
    let src = Harness.packageRoot.appendingPathComponent("Tests/Fixtures/alloccount.c").path
    let r = try Harness.run(cc, ["-shared", "-fPIC", "-O2", "-o", so, src])
    XCTAssertEqual(r.status, 0, r.stderr)
    return so
  }

  func allocationCounts(_ output: String) -> [Int] {
    output.split(separator: "\n").compactMap { line -> Int? in
      guard line.contains("heap allocations inside steps") else { return nil }
      return line.split(separator: " ").compactMap { Int($0) }.last
    }
  }

  func testTrainingStepsDoNotAllocate() throws {
    let dir = try Harness.tempDir(self)
    let so = try buildPreload(dir)
    let steps = 32
    // one thread per rank, and two, where the engine's worker pool runs LayerNorm, GELU,
    // attention and AdamW on a second thread (its allocations are counted too); and two simulated
    // nodes, whose ranks 2-3 forward their records to rank 0 over MPI in every step
    for (i, (np, grid)) in [(2, ["--tp", "2", "--threads", "1"]), (4, ["--tp", "2", "--dp", "2", "--threads", "1"]),
                       (4, ["--tp", "2", "--dp", "2", "--threads", "1", "--collectives", "mpi"]),
                       (2, ["--tp", "2", "--threads", "2"]),
                       // sequence parallelism and recomputation: more collectives, rerun kernels
                       (2, ["--tp", "2", "--threads", "1", "--sequence-parallel", "--recompute", "full"]),
                       (2, ["--tp", "2", "--threads", "2", "--sequence-parallel", "--recompute", "selective"]),
                       (4, ["--tp", "2", "--dp", "2", "--threads", "1", "--sequence-parallel", "--collectives", "mpi"]),
                       // the distributed optimizer's reduce-scatter, partial AdamW and all-gather
                       (4, ["--tp", "2", "--dp", "2", "--threads", "1", "--distributed-optimizer"]),
                       (4, ["--tp", "1", "--dp", "4", "--threads", "1", "--collectives", "mpi", "--distributed-optimizer"]),
                       // overlapped gradient buckets and row-chunked TP all-reduces, ring and mpi
                       (4, ["--tp", "2", "--dp", "2", "--threads", "1", "--bucket-mib", "0.02", "--overlap-grad-reduce", "--overlap-tp"]),
                       (4, ["--tp", "2", "--dp", "2", "--threads", "1", "--collectives", "mpi", "--overlap-grad-reduce", "--overlap-tp"]),
                       // buckets that TP-sum replicated slices, then reduce-scatter into the optimizer's blocks
                       (4, ["--tp", "2", "--dp", "2", "--threads", "1", "--bucket-mib", "0.02", "--distributed-optimizer",
                            "--sequence-parallel", "--overlap-grad-reduce"]),
                       // pipelined all-gathers and reduce-scatters of sequence parallelism, ring and mpi
                       (4, ["--tp", "2", "--dp", "2", "--threads", "1", "--bucket-mib", "0.02", "--distributed-optimizer",
                            "--sequence-parallel", "--overlap-grad-reduce", "--overlap-tp"]),
                       (2, ["--tp", "2", "--threads", "1", "--collectives", "mpi", "--sequence-parallel", "--overlap-tp"]),
                       (4, ["--tp", "2", "--dp", "2", "--threads", "1", "--simulate-nodes", "2"]),
                       // 16-slot rings and a recorder starved 200 ms a poll: rank 0's training
                       // thread copies what the recorder has not read out of the rings (RingRescue)
                       (4, ["--tp", "2", "--dp", "2", "--threads", "1", "--ring-slots", "16"])].enumerated() {
      let job = "alloc-test-\(getpid())-\(i)"
      let starve = grid.contains("--ring-slots") ? ["-x", "TPTOP_RECORDER_TEST_STALL_MS=200"] : []
      let r = try Harness.run("/usr/bin/mpirun", ["--oversubscribe", "-x", "LD_PRELOAD=\(so)"] + starve + ["-np", "\(np)", Harness.tptrain,
                                                  "--model", "tiny", "--batch", "4", "--seq", "32", "--steps", "\(steps)",
                                                  "--quiet", "--job", job] + grid)
      _ = try? Harness.run(Harness.productsDirectory.appendingPathComponent("tptop").path, ["gc", job])
      _ = try? Harness.run(Harness.productsDirectory.appendingPathComponent("tptop").path, ["--namespace", "node1", "gc", job])
      XCTAssertEqual(r.status, 0, r.stderr)
      let counts = allocationCounts(r.stdout)
      XCTAssertEqual(counts.count, np, "one count per rank:\n\(r.stdout)")
      // A per-step allocation would show ≥ 31; MPI may grow a request pool once or twice.
      for c in counts { XCTAssertLessThanOrEqual(c, 3, "heap allocations in \(steps - 1) steps (telemetry on, \(grid))") }
    }
  }
}

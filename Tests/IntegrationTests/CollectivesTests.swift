import Foundation
import XCTest

/// TPComm's data collectives on real MPI ranks, with both algorithms (`mpi`, `ring`):
/// `tpcollectives check` compares every all-reduce (sum, max), reduce-scatter and all-gather
/// (separate and in place) against sums it computes itself from every rank's inputs, and checks
/// that all-reduce results are bitwise identical on every rank.
final class CollectivesTests: XCTestCase {
  func testEveryCollectiveMatchesAnIndependentSumOnTwoThreeAndFourRanks() throws {
    let tool = Harness.productsDirectory.appendingPathComponent("tpcollectives").path
    for np in [2, 3, 4] {
      let r = try Harness.run("/usr/bin/mpirun", ["--oversubscribe", "-np", "\(np)", tool, "check"], timeout: 120)
      XCTAssertEqual(r.status, 0, "np \(np): \(r.stdout)\(r.stderr)")
      XCTAssertTrue(r.stdout.contains("collectives ok on \(np) ranks"), r.stdout)
    }
  }

  func testTrainingWithEitherAlgorithmGivesTheSameLosses() throws {
    let dir = try Harness.tempDir(self)
    var losses: [[Double]] = []
    for algorithm in ["mpi", "ring"] {
      let log = dir.appendingPathComponent("\(algorithm).jsonl").path
      _ = try Harness.train(np: 4, ["--model", "tiny", "--batch", "4", "--seq", "32", "--steps", "6", "--tp", "2", "--dp", "2",
                                    "--collectives", algorithm, "--log", log, "--no-telemetry", "--quiet"])
      losses.append(try Harness.losses(log))
    }
    XCTAssertEqual(losses[0].count, 6)
    for (a, b) in zip(losses[0], losses[1]) { XCTAssertLessThan(relativeDifference(a, b), 1e-5, "\(losses)") }
  }

  func testAnUnknownAlgorithmIsRefusedInOneLine() throws {
    let r = try Harness.run(Harness.tptrain, ["--collectives", "tree", "--steps", "1"])
    XCTAssertNotEqual(r.status, 0)
    XCTAssertTrue(r.stderr.contains("--collectives"), r.stderr)
  }
}

import Foundation
import XCTest
import TPEngine

/// mpirun binds a lone rank to one core by default; tptrain must still use the node's cores.
final class PlacementTests: XCTestCase {
  let mpi = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.fileExists(atPath: $0) } ?? "mpirun"
  let tiny = ["--model", "tiny", "--batch", "2", "--seq", "16", "--steps", "1", "--no-telemetry"]

  func threadsPerRank(_ out: String) -> Int? {
    guard let line = out.split(separator: "\n").first(where: { $0.contains("threads/rank") || $0.contains("thread/rank") }),
      let r = line.range(of: #"× (\d+) thread"#, options: .regularExpression)
    else { return nil }
    return Int(line[r].split(separator: " ")[1])
  }

  func testSingleRankUsesEveryCoreDespiteDefaultBinding() throws {
    let cores = CPUPlacement.cores(of: CPUPlacement.affinity(of: 0)).count
    let r = try Harness.run(mpi, ["-np", "1", Harness.tptrain] + tiny)
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertEqual(threadsPerRank(r.stdout), cores, r.stdout)
    XCTAssertFalse(r.stderr.contains("note:"), r.stderr)
  }

  func testExplicitCoreBindingIsHonouredWithANote() throws {
    guard CPUPlacement.cores(of: CPUPlacement.affinity(of: 0)).count >= 2 else { throw XCTSkip("needs 2 cores") }
    let r = try Harness.run(mpi, ["--bind-to", "core", "-np", "1", Harness.tptrain] + tiny)
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertEqual(threadsPerRank(r.stdout), 1, r.stdout)
    XCTAssertTrue(r.stderr.contains("--bind-to core gives each rank 1 core(s)"), r.stderr)
  }
}

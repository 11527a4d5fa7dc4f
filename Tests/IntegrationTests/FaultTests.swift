import CheckpointLayout
import Foundation
import XCTest

/// Faults a real run meets: bad hyper-parameters, a non-finite loss or gradient norm, and
/// tptrain started through PATH.
final class FaultTests: XCTestCase {
  var dir: URL!
  override func setUpWithError() throws { dir = try Harness.tempDir(self) }
  func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

  /// Bad numeric flags, each refused with one line naming the valid range, before MPI starts.
  func testBadHyperParametersAreRefused() throws {
    for (args, line) in [
      (["--lr", "nan"], "tptrain: error: --lr must be a finite number > 0, not nan"),
      (["--steps", "-3"], "tptrain: error: --steps must be ≥ 0, not -3"),
      (["--beta1", "1.5"], "tptrain: error: --beta1 must be a finite number ≥ 0 and < 1, not 1.5"),
    ] {
      let r = try Harness.mpirun(np: 2, ["--model", "tiny", "--no-telemetry"] + args, timeout: 60)
      XCTAssertNotEqual(r.status, 0, "\(args) accepted")
      let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("tptrain: error") }
      XCTAssertEqual(errors, [Substring(line)], r.stderr)
    }
  }

  /// Default policy: the run stops at the poisoned step with a non-zero exit; the checkpoints
  /// end before it and no model is saved.
  func testNonFiniteGradientStopsWithoutCheckpointingIt() throws {
    let ck = path("ck"), save = path("m.bin")
    let r = try Harness.mpirun(np: 2, ["--model", "tiny", "--tp", "2", "--batch", "2", "--seq", "16", "--steps", "6",
                                       "--checkpoint-dir", ck, "--checkpoint-every", "1", "--save", save,
                                       "--fault-nonfinite-at", "3", "--no-telemetry"], timeout: 120)
    XCTAssertNotEqual(r.status, 0, r.stdout)
    // the NaN is in the gradient only: the line names the gradient norm, not the (finite) loss
    XCTAssertTrue(r.stderr.contains("tptrain: error: non-finite gradient norm nan (loss "), r.stderr)
    XCTAssertTrue(r.stderr.contains("step 3"), r.stderr)
    let steps = Checkpoints.candidates(in: ck).map(\.step)
    XCTAssertEqual(steps.max(), 2, "\(steps)")
    XCTAssertFalse(FileManager.default.fileExists(atPath: save))
    XCTAssertFalse(r.stdout.contains("done:"), r.stdout)
  }

  /// skip-step: the poisoned step changes neither the parameters nor the AdamW moments, and
  /// the skip is counted in the log and the summary.
  func testSkipStepDiscardsTheUpdateAndCountsIt() throws {
    let common = ["--model", "tiny", "--batch", "2", "--seq", "16", "--no-telemetry", "--threads", "1"]
    _ = try Harness.train(np: 1, common + ["--steps", "2", "--checkpoint-dir", path("a"), "--checkpoint-every", "2"])
    let log = path("b.jsonl")
    let r = try Harness.train(np: 1, common + ["--steps", "3", "--checkpoint-dir", path("b"), "--checkpoint-every", "3",
                                               "--on-nonfinite", "skip-step", "--fault-nonfinite-at", "3", "--log", log])
    XCTAssertTrue(r.stdout.contains("done: 3 steps") && r.stdout.contains("1 skipped (non-finite)"), r.stdout)
    let lines = try Harness.readLog(log)
    XCTAssertEqual(lines.last?["skipped_steps"] as? Int, 1)
    XCTAssertTrue(lines.last?["grad_norm"] is NSNull, "\(String(describing: lines.last))")
    let a = path("a/" + Checkpoints.directoryName(step: 2)), b = path("b/" + Checkpoints.directoryName(step: 3))
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a + "/" + Checkpoints.modelFile)),
                   try Data(contentsOf: URL(fileURLWithPath: b + "/" + Checkpoints.modelFile)), "parameters changed")
    // the AdamW moments follow the header, which records the step
    let sa = try Data(contentsOf: URL(fileURLWithPath: a + "/" + Checkpoints.stateFile))
    let sb = try Data(contentsOf: URL(fileURLWithPath: b + "/" + Checkpoints.stateFile))
    XCTAssertEqual(sa.count, sb.count)
    XCTAssertGreaterThan(sa.count, 8192)
    XCTAssertEqual(sa.suffix(sa.count - 4096), sb.suffix(sb.count - 4096), "optimizer moments changed")
  }

  /// tptrain found through PATH, started in a directory without data/: the bundled corpus is
  /// found from the executable's real location.
  func testBundledCorpusIsFoundWhenStartedThroughPath() throws {
    let mpi = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.fileExists(atPath: $0) } ?? "mpirun"
    let p = Process()
    p.executableURL = URL(fileURLWithPath: mpi)
    p.arguments = ["--oversubscribe", "-np", "1", "tptrain", "--model", "tiny", "--steps", "1", "--no-telemetry", "--quiet"]
    p.currentDirectoryURL = dir
    var env = ProcessInfo.processInfo.environment
    env["PATH"] = Harness.productsDirectory.path + ":" + (env["PATH"] ?? "/usr/bin:/bin")
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["TPTOP_DATA"] = nil
    p.environment = env
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0, text)
  }
}

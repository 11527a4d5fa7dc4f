import Foundation
import TestSupport
import XCTest

/// The engine against an independent GPT-2 (numpy, float64, Tests/reference/gpt2_numpy.py) that
/// reads the same llm.c checkpoint and token files.
final class ReferenceModelTests: XCTestCase {
  func python() throws -> String {
    let onPath = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/python3" }
    for p in onPath + ["/usr/bin/python3", "/usr/local/bin/python3"]
    where FileManager.default.isExecutableFile(atPath: p) {
      let r = try Harness.run(p, ["-c", "import numpy"])
      if r.status == 0 { return p }
    }
    throw MissingTool.error("python3 with numpy (make test installs python3-numpy)")
  }

  func testTenAdamWStepsMatchTheNumpyReference() throws {
    try compareWithReference(clip: "1.0")
  }

  /// Without clipping the engine takes the gradient norm out of its AdamW sweep instead of a
  /// separate pass: the same comparison on that path.
  func testTenAdamWStepsWithoutClippingMatchTheNumpyReference() throws {
    try compareWithReference(clip: "0")
  }

  func compareWithReference(clip: String) throws {
    let py = try python()
    let dir = try Harness.tempDir(self)
    let data = dir.appendingPathComponent("tokens.bin").path
    try Harness.corpusTokens(data, vocab: 200)
    let ckpt = dir.appendingPathComponent("init.bin").path
    // the initial checkpoint comes from the reference, not from the engine
    let made = try Harness.run(py, [Harness.reference, "--make-checkpoint", ckpt, "--layers", "2", "--heads", "4", "--channels", "64",
                                    "--vocab", "200", "--padded-vocab", "256", "--max-seq", "64", "--seed", "3"])
    XCTAssertEqual(made.status, 0, made.stderr)
    let hyper = ["--lr", "1e-3", "--weight-decay", "0.1", "--grad-clip", clip, "--batch", "4", "--seq", "32", "--steps", "10"]
    let ref = try Harness.run(py, [Harness.reference, "--checkpoint", ckpt, "--data", data,
                                   "--dump-grads", dir.appendingPathComponent("ref.grads").path] + hyper)
    XCTAssertEqual(ref.status, 0, ref.stderr)
    let refRows = try ref.stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    let refLoss = refRows.map { ($0["loss"] as! NSNumber).doubleValue }
    let refNorm = refRows.map { ($0["grad_norm"] as! NSNumber).doubleValue }
    XCTAssertEqual(refLoss.count, 10)

    for tp in [1, 2] {
      let log = dir.appendingPathComponent("tp\(tp).jsonl").path
      _ = try Harness.train(np: tp, ["--init-from", ckpt, "--data", data, "--tp", "\(tp)", "--log", log, "--quiet", "--no-telemetry",
                                     "--dump-grads", dir.appendingPathComponent("tp\(tp)").path] + hyper)
      let rows = try Harness.readLog(log)
      XCTAssertEqual(rows.count, 10)
      for (i, row) in rows.enumerated() {
        let loss = (row["loss"] as! NSNumber).doubleValue
        let norm = (row["grad_norm"] as! NSNumber).doubleValue
        XCTAssertLessThanOrEqual(relativeDifference(loss, refLoss[i]), 1e-4, "TP=\(tp) step \(i + 1): \(loss) vs reference \(refLoss[i])")
        XCTAssertLessThanOrEqual(relativeDifference(norm, refNorm[i]), 1e-3, "TP=\(tp) step \(i + 1) grad norm: \(norm) vs \(refNorm[i])")
      }
    }
    // step-1 gradient of the whole model, TP=1, element by element
    let got = try Harness.floats(dir.appendingPathComponent("tp1.rank0.bin").path)
    let want = try Harness.floats(dir.appendingPathComponent("ref.grads").path)
    XCTAssertEqual(got.count, want.count)
    let bad = paired(got, want, "step-1 gradient").filter { abs($0 - $1) > 1e-5 + 1e-3 * abs($1) }.count
    XCTAssertEqual(bad, 0, "\(bad) of \(got.count) gradient elements differ from the reference")
  }
}

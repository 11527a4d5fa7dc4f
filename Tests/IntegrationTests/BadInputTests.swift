import Foundation
import XCTest

/// Bad input: one clear line naming the problem, a non-zero exit, nothing written.
final class BadInputTests: XCTestCase {
  var dir: URL!
  var save: String { dir.appendingPathComponent("out.bin").path }
  var log: String { dir.appendingPathComponent("out.jsonl").path }

  override func setUpWithError() throws { dir = try Harness.tempDir(self) }

  /// Runs tptrain, expects failure with `phrase` in the single error line, and no output files.
  func expectRejected(np: Int = 1, _ args: [String], _ phrase: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let r = try Harness.mpirun(np: np, args + ["--save", save, "--log", log, "--no-telemetry"], timeout: 60)
    XCTAssertNotEqual(r.status, 0, "accepted \(args)", file: file, line: line)
    let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("tptrain: error") }
    XCTAssertEqual(errors.count, 1, "expected one error line, got:\n\(r.stderr)", file: file, line: line)
    XCTAssertTrue(errors.first?.contains(phrase) ?? false, "error line lacks '\(phrase)':\n\(r.stderr)", file: file, line: line)
    XCTAssertFalse(r.stderr.contains("Fatal error"), "trapped:\n\(r.stderr)", file: file, line: line)
    XCTAssertFalse(FileManager.default.fileExists(atPath: save), "wrote \(save)", file: file, line: line)
    XCTAssertFalse(FileManager.default.fileExists(atPath: log), "wrote \(log)", file: file, line: line)
  }

  func write(_ name: String, _ data: Data) throws -> String {
    let p = dir.appendingPathComponent(name).path
    try data.write(to: URL(fileURLWithPath: p))
    return p
  }

  func validCheckpoint() throws -> String {
    let p = dir.appendingPathComponent("good.bin").path
    _ = try Harness.train(np: 1, ["--model", "tiny", "--steps", "0", "--save", p, "--quiet", "--no-telemetry"])
    return p
  }

  /// A model far beyond any node's memory (~1.2 TiB of weights and AdamW state per rank).
  func testModelTooLargeForMemory() throws {
    try expectRejected(["--layers", "96", "--heads", "64", "--channels", "8192", "--vocab", "256",
                        "--max-seq", "64", "--batch", "1", "--seq", "64", "--steps", "1"], "smaller model")
  }

  func testZeroThreads() throws {
    try expectRejected(["--model", "tiny", "--steps", "1", "--threads", "0"], "--threads must be ≥ 1")
  }

  func testMissingCheckpoint() throws {
    try expectRejected(["--init-from", dir.appendingPathComponent("nope.bin").path], "cannot open checkpoint")
  }

  func testTruncatedCheckpoint() throws {
    let good = try Data(contentsOf: URL(fileURLWithPath: try validCheckpoint()))
    try expectRejected(["--init-from", try write("short.bin", good.prefix(good.count - 100))], "truncated")
    try expectRejected(["--init-from", try write("tiny.bin", good.prefix(100))], "truncated")
  }

  func testWrongMagicCheckpoint() throws {
    var d = try Data(contentsOf: URL(fileURLWithPath: try validCheckpoint()))
    d[0] = 0x42
    try expectRejected(["--init-from", try write("magic.bin", d)], "wrong magic")
  }

  func testCheckpointShapeContradictsFlags() throws {
    try expectRejected(["--init-from", try validCheckpoint(), "--layers", "3"], "contradicts")
  }

  func testTokenFileProblems() throws {
    try expectRejected(["--model", "tiny", "--data", dir.appendingPathComponent("none.bin").path], "cannot open data file")
    var header = [Int32](repeating: 0, count: 256)
    header[0] = 20240520; header[1] = 1; header[2] = 1000
    let h = header.withUnsafeBytes { Data($0) }
    try expectRejected(["--model", "tiny", "--data", try write("trunc.bin", h + Data(count: 20))], "truncated")
    var bad = header; bad[0] = 7
    try expectRejected(["--model", "tiny", "--data", try write("magic.bin", bad.withUnsafeBytes { Data($0) } + Data(count: 2000))], "wrong magic")
    // token id 300 ≥ vocab 256
    let p = dir.appendingPathComponent("ids.bin").path
    try Harness.writeTokenFile(p, [UInt16](repeating: 3, count: 500) + [300] + [UInt16](repeating: 1, count: 500))
    try expectRejected(["--model", "tiny", "--data", p], "token id 300")
  }

  func testBatchLargerThanData() throws {
    try expectRejected(["--model", "tiny", "--data", try write("small.txt", Data("hello world".utf8)), "--batch", "4", "--seq", "16"], "tokens")
  }

  func testSequenceLongerThanModel() throws {
    try expectRejected(["--model", "tiny", "--seq", "128"], "max-seq 64")
  }

  func testImpossibleSplitAndGrid() throws {
    try expectRejected(np: 3, ["--model", "tiny", "--tp", "3"], "cannot split the model over tp=3")
    try expectRejected(np: 2, ["--model", "tiny", "--tp", "2", "--dp", "2"], "world size 2")
  }

  /// Sequence parallelism needs batch × seq divisible by tp; --recompute takes three values.
  func testSequenceParallelSplitAndUnknownRecompute() throws {
    try expectRejected(np: 2, ["--model", "tiny", "--tp", "2", "--batch", "3", "--seq", "15", "--sequence-parallel"],
                       "batch × seq = 3 × 15 = 45 is not divisible by 2")
    try expectRejected(["--model", "tiny", "--recompute", "some"], "unknown --recompute 'some': use none, selective or full")
  }
}

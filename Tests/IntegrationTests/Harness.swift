import Foundation
import XCTest

/// Runs the built binaries (real mpirun, real ranks) and reads what they write.
enum Harness {
  /// The directory holding the built products (tptrain, tptop) next to the test bundle.
  static var productsDirectory: URL {
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
      return bundle.bundleURL.deletingLastPathComponent()
    }
    return Bundle.main.bundleURL
  }

  static var tptrain: String { productsDirectory.appendingPathComponent("tptrain").path }
  static var packageRoot: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  }
  static var corpus: String { packageRoot.appendingPathComponent("data/shakespeare.txt").path }
  static var reference: String { packageRoot.appendingPathComponent("Tests/reference/gpt2_numpy.py").path }

  struct Result {
    var status: Int32
    var stdout: String
    var stderr: String
  }

  /// Runs `executable args` with a time limit; stdout/stderr captured through files.
  static func run(_ executable: String, _ args: [String], timeout: TimeInterval = 300,
                  environment extra: [String: String] = [:]) throws -> Result {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tptop-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
    let p = try start(executable, args, out: out, err: err, environment: extra)
    return try collect(p, out: out, err: err, timeout: timeout, what: "\(executable) \(args)")
  }

  /// Starts `executable args` with the MPI environment (root allowed, oversubscription) plus
  /// `extra`, stdout and stderr into the files `out` and `err`.
  static func start(_ executable: String, _ args: [String], out: URL, err: URL,
                    environment extra: [String: String] = [:]) throws -> Process {
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    for (k, v) in extra { env[k] = v }
    p.environment = env
    p.standardOutput = try FileHandle(forWritingTo: out)
    p.standardError = try FileHandle(forWritingTo: err)
    try p.run()
    return p
  }

  /// Waits up to `timeout` seconds for `p`, then returns its status and the files' text; a
  /// process still running then is terminated and the wait throws.
  static func collect(_ p: Process, out: URL, err: URL, timeout: TimeInterval, what: String) throws -> Result {
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning {
      p.terminate()
      p.waitUntilExit()
      throw NSError(domain: "Harness", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(what) timed out"])
    }
    return Result(status: p.terminationStatus,
                  stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                  stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
  }

  static func mpirun(np: Int, _ args: [String], timeout: TimeInterval = 300) throws -> Result {
    let mpi = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.fileExists(atPath: $0) } ?? "mpirun"
    return try run(mpi, ["--oversubscribe", "--bind-to", "none", "-np", "\(np)", tptrain] + args, timeout: timeout)
  }

  /// Runs tptrain and fails the test (with its output) unless it exits 0.
  static func train(np: Int, _ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Result {
    let r = try mpirun(np: np, args)
    XCTAssertEqual(r.status, 0, "tptrain \(args) failed:\n\(r.stdout)\n\(r.stderr)", file: file, line: line)
    return r
  }

  /// The OpenBLAS kernel family tptrain runs on (its start-up line's "BLAS <core>").
  static let blasCore: String = {
    guard let r = try? mpirun(np: 1, ["--model", "tiny", "--steps", "1", "--batch", "1", "--seq", "8", "--no-telemetry"]),
      let range = r.stdout.range(of: #"BLAS \S+"#, options: .regularExpression) else { return "unknown" }
    return String(r.stdout[range].dropFirst(5))
  }()

  /// Whether OpenBLAS's kernels give a row of a product the same sums wherever the row lies in
  /// the call (pieces of ≥ 64 rows): its AVX-512 families do, so a GEMM cut into pieces is
  /// bitwise the whole one; its AVX2 ones (Haswell, Zen) round a row by its place in the call.
  static var rowStableBLAS: Bool { ["skylakex", "cooperlake", "sapphirerapids"].contains(blasCore.lowercased()) }

  /// A fresh temporary directory removed by the test's teardown.
  static func tempDir(_ test: XCTestCase) throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("tptop-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  /// JSON Lines → array of objects.
  static func readLog(_ path: String) throws -> [[String: Any]] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    return try text.split(separator: "\n").map {
      try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
    }
  }

  static func losses(_ path: String) throws -> [Double] {
    try readLog(path).map { ($0["loss"] as? NSNumber)?.doubleValue ?? .nan }
  }

  static func floats(_ path: String) throws -> [Float] {
    let d = try Data(contentsOf: URL(fileURLWithPath: path))
    return d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
  }

  /// Writes an llm.c token file (magic 20240520, version 1) of `tokens`.
  static func writeTokenFile(_ path: String, _ tokens: [UInt16]) throws {
    var header = [Int32](repeating: 0, count: 256)
    header[0] = 20240520; header[1] = 1; header[2] = Int32(tokens.count)
    var d = header.withUnsafeBytes { Data($0) }
    d.append(tokens.withUnsafeBytes { Data($0) })
    try d.write(to: URL(fileURLWithPath: path))
  }

  /// A token file made from the corpus bytes folded into `vocab` ids (first `count` bytes).
  static func corpusTokens(_ path: String, vocab: Int, count: Int = 200_000) throws {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: corpus)).prefix(count)
    try writeTokenFile(path, bytes.map { UInt16(Int($0) % vocab) })
  }
}

func relativeDifference(_ a: Double, _ b: Double) -> Double { abs(a - b) / max(abs(b), 1e-12) }

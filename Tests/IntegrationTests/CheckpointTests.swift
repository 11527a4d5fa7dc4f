import Foundation
import JobControl
import TestSupport
import XCTest

/// Checkpoints, exact resume, re-sharding on load, fallback past damaged checkpoints, SIGTERM,
/// bad --resume directories, and a supervised restart after `kill -9` of a rank. Every job is a
/// real mpirun job of the `tiny` preset.
final class CheckpointTests: XCTestCase {
  var dir: URL!
  let common = ["--model", "tiny", "--batch", "4", "--seq", "32", "--quiet", "--no-telemetry"]

  override func setUpWithError() throws { dir = try Harness.tempDir(self) }

  func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

  /// Each step's loss exactly as the log printed it (%.9g), by step.
  func lossStrings(_ log: String) throws -> [Int: String] { try Harness.lossStrings(log) }

  func stepDirectories(_ ck: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: ck)) ?? []).filter { $0.hasPrefix("step_") }.sorted()
  }

  // MARK: Exact resume

  /// Saved and resumed at t=2: every later step's loss is bit-identical to the uninterrupted run.
  func testExactResumeAtTP2() throws {
    let ck = path("ck")
    _ = try Harness.train(np: 2, common + ["--tp", "2", "--steps", "10", "--checkpoint-dir", ck,
                                           "--checkpoint-every", "5", "--log", path("full.jsonl")])
    XCTAssertEqual(stepDirectories(ck), ["step_00000005", "step_00000010"])
    for f in ["model.bin", "state.bin", "manifest.json"] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: "\(ck)/step_00000005/\(f)"), f)
    }
    // Resume by naming the checkpoint; no model or training flags: they come from it.
    _ = try Harness.train(np: 2, ["--tp", "2", "--resume", "\(ck)/step_00000005", "--checkpoint-dir", path("ck2"),
                                  "--log", path("resumed.jsonl"), "--quiet", "--no-telemetry"])
    let full = try lossStrings(path("full.jsonl")), resumed = try lossStrings(path("resumed.jsonl"))
    XCTAssertEqual(resumed.keys.sorted(), Array(6...10), "the resumed run continues at step 6")
    for step in 6...10 {
      XCTAssertEqual(resumed[step], full[step], "step \(step): resumed loss differs from the uninterrupted run")
    }
  }

  /// Saved at t=4, resumed at t=2, saved again, resumed at t=1: model and AdamW state re-shard,
  /// and losses follow the uninterrupted t=4 run within 1e-4 relative.
  func testReshardFourToTwoToOne() throws {
    let ck4 = path("ck4"), ck2 = path("ck2")
    _ = try Harness.train(np: 4, common + ["--tp", "4", "--steps", "12", "--checkpoint-dir", ck4,
                                           "--checkpoint-every", "4", "--log", path("tp4.jsonl")])
    _ = try Harness.train(np: 2, ["--tp", "2", "--resume", "\(ck4)/step_00000004", "--steps", "8", "--checkpoint-dir", ck2,
                                  "--checkpoint-every", "4", "--log", path("tp2.jsonl"), "--quiet", "--no-telemetry"])
    _ = try Harness.train(np: 1, ["--tp", "1", "--resume", ck2, "--steps", "12",
                                  "--log", path("tp1.jsonl"), "--quiet", "--no-telemetry"])
    let ref = try Harness.readLog(path("tp4.jsonl")), tp2 = try Harness.readLog(path("tp2.jsonl"))
    let tp1 = try Harness.readLog(path("tp1.jsonl"))
    func losses(_ log: [[String: Any]]) -> [Int: Double] {
      Dictionary(uniqueKeysWithValues: log.map { (($0["step"] as? Int) ?? -1, ($0["loss"] as? NSNumber)?.doubleValue ?? .nan) })
    }
    let r = losses(ref), a = losses(tp2), b = losses(tp1)
    XCTAssertEqual(a.keys.sorted(), Array(5...8))
    XCTAssertEqual(b.keys.sorted(), Array(9...12), "t=1 resumed from t=2's newest checkpoint (step 8)")
    for (step, loss) in a.merging(b, uniquingKeysWith: { x, _ in x }) {
      XCTAssertLessThanOrEqual(relativeDifference(loss, r[step] ?? .nan), 1e-4, "step \(step): \(loss) vs t=4 \(r[step] ?? .nan)")
    }
  }

  // MARK: Damaged checkpoints

  /// A truncated newest checkpoint is reported in one line and the previous one is used.
  func testTruncatedNewestCheckpointFallsBackToPrevious() throws {
    let ck = path("ck")
    _ = try Harness.train(np: 1, common + ["--steps", "6", "--checkpoint-dir", ck, "--checkpoint-every", "3",
                                           "--log", path("full.jsonl")])
    let state = "\(ck)/step_00000006/state.bin"
    let h = try FileHandle(forWritingTo: URL(fileURLWithPath: state))
    try h.truncate(atOffset: h.seekToEnd() - 100)
    try h.close()
    let r = try Harness.train(np: 1, ["--resume", ck, "--log", path("resumed.jsonl"), "--quiet", "--no-telemetry"])
    let warnings = r.stderr.split(separator: "\n").filter { $0.contains("step_00000006") }
    XCTAssertEqual(warnings.count, 1, "one line reports the damaged checkpoint:\n\(r.stderr)")
    XCTAssertTrue(warnings.first?.contains("truncated") ?? false, r.stderr)
    let full = try lossStrings(path("full.jsonl")), resumed = try lossStrings(path("resumed.jsonl"))
    XCTAssertEqual(resumed.keys.sorted(), [4, 5, 6], "resumed from step 3")
    for step in 4...6 { XCTAssertEqual(resumed[step], full[step], "step \(step)") }
  }

  /// Bad --resume directories: one `tptrain: error:` line each, a non-zero exit, nothing written.
  func testBadCheckpointDirectoriesAreRejected() throws {
    let good = path("good")
    _ = try Harness.train(np: 1, common + ["--steps", "2", "--checkpoint-dir", good, "--checkpoint-every", "2"])
    let fm = FileManager.default
    try fm.createDirectory(atPath: path("empty"), withIntermediateDirectories: true)
    try fm.createDirectory(atPath: path("garbage/step_00000001"), withIntermediateDirectories: true)
    try Data("{ not json".utf8).write(to: URL(fileURLWithPath: path("garbage/step_00000001/manifest.json")))
    try fm.copyItem(atPath: "\(good)/step_00000002", toPath: path("flipped/step_00000002"))
    let model = URL(fileURLWithPath: path("flipped/step_00000002/model.bin"))
    var bytes = try Data(contentsOf: model)
    bytes[5000] ^= 0x40
    try bytes.write(to: model)
    // a manifest whose run settings were edited: the error names the field
    try fm.copyItem(atPath: "\(good)/step_00000002", toPath: path("edited/step_00000002"))
    let manifest = path("edited/step_00000002/manifest.json")
    let text = try String(contentsOfFile: manifest, encoding: .utf8)
    let edited = text.replacingOccurrences(of: #""dataTokens"\s*:\s*\d+"#, with: "\"dataTokens\" : 7", options: .regularExpression)
    XCTAssertNotEqual(edited, text, "the manifest names dataTokens")
    try edited.write(toFile: manifest, atomically: true, encoding: .utf8)

    let cases: [([String], String)] = [
      (["--resume", path("missing")], "no such directory"),
      (["--resume", path("empty")], "holds no checkpoints"),
      (["--resume", path("garbage")], "holds no valid checkpoint"),
      (["--resume", path("garbage/step_00000001")], "not a valid manifest"),
      (["--resume", path("flipped")], "checksum"),
      (["--resume", path("edited/step_00000002")], "state.bin and manifest.json disagree about dataTokens (damaged)"),
      (["--resume", "\(good)/step_00000002/model.bin"], "is a file"),
      (["--resume", good, "--batch", "8"], "saved with other settings (--batch 8 vs 4)"),
      (["--resume", good, "--model", "small"], "not the --model small preset"),
      (["--resume", good, "--steps", "1"], "before the checkpoint's step 2"),
      (common + ["--checkpoint-every", "1", "--checkpoint-dir", path("missing/ck")], "not a writable directory"),
    ]
    for (args, phrase) in cases {
      let out = path("out"), log = path("out.jsonl"), save = path("out.bin")
      let target = args.contains("--checkpoint-dir") ? [] : ["--checkpoint-dir", out]
      let r = try Harness.mpirun(np: 1, args + target + ["--log", log, "--save", save, "--no-telemetry"], timeout: 60)
      XCTAssertNotEqual(r.status, 0, "accepted \(args)")
      let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("tptrain:") }
      XCTAssertEqual(lines.count, 1, "\(args): expected one line, got:\n\(r.stderr)")
      XCTAssertTrue(lines.first?.hasPrefix("tptrain: error: ") ?? false, "\(args):\n\(r.stderr)")
      XCTAssertTrue(lines.first?.contains(phrase) ?? false, "\(args): error lacks '\(phrase)':\n\(r.stderr)")
      XCTAssertFalse(r.stderr.contains("Fatal error"), "trapped:\n\(r.stderr)")
      for p in [out, log, save] { XCTAssertFalse(fm.fileExists(atPath: p), "\(args) wrote \(p)") }
    }
  }

  // MARK: Signals

  /// SIGTERM to mpirun (forwarded to every rank) and SIGTERM to one rank only: either way the
  /// job writes a valid checkpoint at the next step boundary and stops; the checkpoint resumes.
  func testSigtermWritesCheckpoint() throws {
    for target in ["mpirun", "one rank"] {
      let ck = path("ck-\(target.count)"), log = path("log-\(target.count).jsonl")
      let job = try BackgroundJob(Harness.mpirunPath, ["--oversubscribe", "--bind-to", "none", "-np", "2", Harness.tptrain]
                                    + common + ["--tp", "2", "--steps", "1000000", "--checkpoint-dir", ck, "--log", log])
      try job.waitUntil(timeout: 60) { ((try? String(contentsOfFile: log, encoding: .utf8))?.count ?? 0) > 0 }
      if target == "mpirun" {
        kill(job.pid, SIGTERM)
      } else {
        let ranks = ProcessTable.children(of: job.pid)
        XCTAssertEqual(ranks.count, 2, "mpirun's ranks")
        kill(ranks.max() ?? job.pid, SIGTERM)
      }
      let r = try job.wait(timeout: 60)
      if target == "one rank" { XCTAssertEqual(r.status, 0, "a rank's SIGTERM stops the job cleanly:\n\(r.stderr)") }
      XCTAssertTrue(r.stderr.contains("SIGTERM received: stopped at step"), "\(target):\n\(r.stderr)")
      let dirs = stepDirectories(ck)
      XCTAssertEqual(dirs.count, 1, "\(target): one checkpoint, got \(dirs)")
      guard let name = dirs.first, let step = Int(name.dropFirst(5)) else { continue }
      XCTAssertEqual(try Harness.readLog(log).count, step, "\(target): the checkpoint holds the last finished step")
      _ = try Harness.train(np: 1, ["--resume", ck, "--steps", "\(step + 1)", "--quiet", "--no-telemetry"])
    }
  }

  // MARK: Faults

  /// `tptop supervise --restart 1`: `kill -9` of one rank mid-run; the job is relaunched from the
  /// latest checkpoint and ends with the uninterrupted run's final loss, bit for bit.
  func testKilledRankIsRestartedFromCheckpoint() throws {
    let tptop = Harness.productsDirectory.appendingPathComponent("tptop").path
    let help = try Harness.run(tptop, ["supervise", "--help"], timeout: 30)
    XCTAssertEqual(help.status, 0, "tptop supervise --help: \(help.stderr)")
    XCTAssertTrue(help.stdout.contains("--restart"), "tptop supervise --help names --restart")
    let steps = 1000
    let train = common + ["--tp", "2", "--steps", "\(steps)"]
    _ = try Harness.train(np: 2, train + ["--log", path("ref.jsonl")])

    let ck = path("ck"), log = path("sup.jsonl")
    let job = try BackgroundJob(tptop, ["supervise", "--restart", "1", "--np", "2", "--mpirun", Harness.mpirunPath,
                                        "--tptrain", Harness.tptrain, "--mpirun-arg=--oversubscribe", "--"]
                                  + train + ["--checkpoint-dir", ck, "--checkpoint-every", "20", "--log", log])
    try job.waitUntil(timeout: 120) { FileManager.default.fileExists(atPath: "\(ck)/step_00000020/manifest.json") }
    let ranks = BackgroundJob.processes { $0.first?.hasSuffix("tptrain") == true && $0.contains(ck) }
    XCTAssertEqual(ranks.count, 2, "the job's two ranks")
    let victim = ranks.max() ?? 0
    XCTAssertEqual(kill(victim, SIGKILL), 0)
    let r = try job.wait(timeout: 240)
    XCTAssertEqual(r.status, 0, "supervised job failed:\n\(r.stdout)\n\(r.stderr)")
    XCTAssertTrue(r.stdout.contains("incarnation 0 failed"), r.stdout)
    XCTAssertTrue(r.stdout.contains("killed by signal 9"), "the failure names the signal:\n\(r.stdout)")
    XCTAssertTrue(r.stdout.contains("restarting as incarnation 1 from the latest checkpoint"), r.stdout)
    let ref = try lossStrings(path("ref.jsonl")), resumed = try lossStrings(log)
    XCTAssertNotNil(resumed[steps], "the relaunched job reached step \(steps)")
    XCTAssertEqual(resumed[steps], ref[steps], "final loss after kill -9 and restart")
  }
}

extension Harness {
  /// Each step's loss exactly as a `--log` file printed it (%.9g), by step.
  static func lossStrings(_ log: String) throws -> [Int: String] {
    let text = try String(contentsOfFile: log, encoding: .utf8)
    var out: [Int: String] = [:]
    for line in text.split(separator: "\n") {
      guard let s = line.range(of: "\"step\":"), let l = line.range(of: ",\"loss\":") else { continue }
      let step = Int(line[s.upperBound..<l.lowerBound]) ?? -1
      let rest = line[l.upperBound...]
      out[step] = String(rest.prefix { $0 != "," })
    }
    return out
  }

  static var mpirunPath: String {
    ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.fileExists(atPath: $0) } ?? "mpirun"
  }
}

/// A process started in the background with the harness's MPI environment; output to files.
final class BackgroundJob {
  let process: Process
  let out: URL
  let err: URL
  var pid: Int32 { process.processIdentifier }

  init(_ executable: String, _ args: [String]) throws {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("tptop-bg-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    out = d.appendingPathComponent("out")
    err = d.appendingPathComponent("err")
    process = try Harness.start(executable, args, out: out, err: err)
  }

  deinit {
    if process.isRunning { process.terminate() }
    try? FileManager.default.removeItem(at: out.deletingLastPathComponent())
  }

  /// Polls `condition` every 10 ms; throws if the process exits first or time runs out.
  func waitUntil(timeout: TimeInterval, _ condition: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while !condition() {
      if !process.isRunning || Date() > deadline {
        let e = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        throw NSError(domain: "BackgroundJob", code: 1, userInfo: [NSLocalizedDescriptionKey: "condition not met (running: \(process.isRunning)):\n\(e)"])
      }
      usleep(10_000)
    }
  }

  func wait(timeout: TimeInterval) throws -> Harness.Result {
    try Harness.collect(process, out: out, err: err, timeout: timeout, what: "background job")
  }

  /// Pids of processes whose argv (NUL-separated /proc/PID/cmdline) satisfies `match`.
  static func processes(_ match: ([String]) -> Bool) -> [Int32] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return names.compactMap { Int32($0) }.filter { pid in
      guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !d.isEmpty else { return false }
      return match(d.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
    }
  }
}

import CheckpointLayout
import Foundation
import JobControl
import XCTest

/// Checkpoint naming and manifest reading, as every program shares them.
final class CheckpointLayoutTests: XCTestCase {
  func testDirectoryNames() {
    XCTAssertEqual(Checkpoints.directoryName(step: 100), "step_00000100")
    XCTAssertEqual(Checkpoints.step(ofDirectoryName: "step_00000100"), 100)
    XCTAssertNil(Checkpoints.step(ofDirectoryName: "step_"))
    XCTAssertNil(Checkpoints.step(ofDirectoryName: "step_12a"))
    XCTAssertNil(Checkpoints.step(ofDirectoryName: ".tmp-step_00000001"))
    XCTAssertEqual(Checkpoints.lastComponent("ck/step_00000001//"), "step_00000001")
    XCTAssertEqual(Checkpoints.directory(holding: "ck/step_00000001"), "ck")
    XCTAssertEqual(Checkpoints.directory(holding: "step_00000001"), ".")
  }

  func testWriteDirectory() {
    XCTAssertEqual(Checkpoints.writeDirectory(checkpointDir: nil, resume: nil), "checkpoints")
    XCTAssertEqual(Checkpoints.writeDirectory(checkpointDir: "a", resume: "b"), "a")
    XCTAssertEqual(Checkpoints.writeDirectory(checkpointDir: nil, resume: "runs/step_00000003"), "runs")
    XCTAssertEqual(Checkpoints.writeDirectory(checkpointDir: nil, resume: "runs"), "runs")
  }

  func testManifestProblems() throws {
    let dir = NSTemporaryDirectory() + "tptop-manifest-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    func problem() -> String {
      do { _ = try CheckpointManifest.read(checkpoint: dir); return "" } catch { return "\(error)" }
    }
    XCTAssertEqual(problem(), "no manifest.json (incomplete checkpoint)")
    try Data("{".utf8).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    XCTAssertEqual(problem(), "manifest.json is not a valid manifest (damaged)")

    let run = RunConfiguration(layers: 2, heads: 4, channels: 64, vocab: 256, paddedVocab: 256, maxSeq: 64, batch: 4, seq: 32,
                               totalSteps: 10, learningRateBits: Float(3e-4).bitPattern, beta1Bits: Float(0.9).bitPattern,
                               beta2Bits: Float(0.999).bitPattern, epsBits: Float(1e-8).bitPattern, weightDecayBits: 0,
                               gradClipBits: 0, schedule: "constant", warmupSteps: 0, minFractionBits: Float(0.1).bitPattern,
                               dataPath: "d", dataTokens: 9, seed: 1)
    var m = CheckpointManifest(step: 3, tp: 2, dp: 1, reason: "periodic", created: "2026-01-01T00:00:00Z", config: run,
                               optimizer: ReadableOptimizer(run), files: [.init(name: "model.bin", bytes: 8, checksum: "0")])
    XCTAssertEqual(m.optimizer?.learningRate, 0.0003, "the shortest decimal of the Float")
    try JSONEncoder().encode(m).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    XCTAssertEqual(try CheckpointManifest.read(checkpoint: dir), m)
    m.version = 2
    try JSONEncoder().encode(m).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    XCTAssertEqual(problem(), "manifest.json has format 'tptop-checkpoint' version 2, expected 'tptop-checkpoint' version 1")
  }

  /// Writes DIR/step_<step> with a manifest of run `run` and a model.bin of `bytes` bytes (the
  /// manifest says 8).
  private func checkpoint(_ dir: String, step: Int, run: String?, bytes: Int = 8) throws {
    let path = dir + "/" + Checkpoints.directoryName(step: step)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let config = RunConfiguration(layers: 2, heads: 4, channels: 64, vocab: 256, paddedVocab: 256, maxSeq: 64, batch: 4, seq: 32,
                                  totalSteps: 10, learningRateBits: 0, beta1Bits: 0, beta2Bits: 0, epsBits: 0, weightDecayBits: 0,
                                  gradClipBits: 0, schedule: "constant", warmupSteps: 0, minFractionBits: 0, dataPath: "d",
                                  dataTokens: 9, seed: 1)
    let m = CheckpointManifest(step: step, tp: 1, dp: 1, reason: "periodic", created: "2026-01-01T00:00:00Z", config: config,
                               optimizer: nil, files: [.init(name: "model.bin", bytes: 8, checksum: "0")],
                               lineage: run.map { CheckpointLineage(run: $0, parent: nil) })
    try JSONEncoder().encode(m).write(to: URL(fileURLWithPath: path + "/manifest.json"))
    try Data(count: bytes).write(to: URL(fileURLWithPath: path + "/model.bin"))
  }

  /// Issue 25, item 1: a run prunes only its own checkpoints; a branch sees another run's later
  /// ones. Item 13: the checkpoint a restart announces is one whose files have their sizes.
  func testRunsPruneOnlyTheirOwnAndBranchesSeeOtherRunsCheckpoints() throws {
    let dir = NSTemporaryDirectory() + "tptop-lineage-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for step in [10, 20, 30, 40] { try checkpoint(dir, step: step, run: "aaaa") }
    try checkpoint(dir, step: 25, run: "bbbb")
    try checkpoint(dir, step: 28, run: "bbbb")
    try checkpoint(dir, step: 5, run: nil)
    let name = { (p: String) in Checkpoints.lastComponent(p) }
    XCTAssertEqual(Checkpoints.prunable(in: dir, run: "bbbb", keep: 1).map(name), ["step_00000025"])
    XCTAssertEqual(Checkpoints.prunable(in: dir, run: "aaaa", keep: 2).map(name), ["step_00000020", "step_00000010"])
    XCTAssertEqual(Checkpoints.prunable(in: dir, run: "aaaa", keep: 0), [], "keep 0 keeps all")
    XCTAssertEqual(Checkpoints.run(of: dir + "/step_00000005"), nil, "an unnamed run's checkpoint is nobody's to prune")
    let later = Checkpoints.laterCheckpointsOfOtherRuns(in: dir, run: "bbbb", after: 20, through: .max)
    XCTAssertEqual(later.map(\.step), [40, 30])
    XCTAssertEqual(Checkpoints.laterCheckpointsOfOtherRuns(in: dir, run: "bbbb", after: 20, through: .max,
                                                           ignoring: [dir + "/step_00000040"]).map(\.step), [30])
    try checkpoint(dir, step: 50, run: "aaaa", bytes: 4)
    XCTAssertEqual(Checkpoints.latest(in: dir)?.step, 50, "a manifest is there")
  }

  /// Writes DIR/step_<step> with both files holding `fill` bytes and a manifest listing their
  /// real sizes and checksums.
  private func verifiableCheckpoint(_ dir: String, step: Int, fill: UInt8) throws {
    let path = dir + "/" + Checkpoints.directoryName(step: step)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    var files: [CheckpointManifest.File] = []
    for name in [Checkpoints.modelFile, Checkpoints.stateFile] {
      try Data(repeating: fill, count: 4099).write(to: URL(fileURLWithPath: path + "/" + name))
      let (bytes, sum) = try FNV1a64.file(path + "/" + name)
      files.append(.init(name: name, bytes: bytes, checksum: FNV1a64.hex(sum)))
    }
    let config = RunConfiguration(layers: 2, heads: 4, channels: 64, vocab: 256, paddedVocab: 256, maxSeq: 64, batch: 4, seq: 32,
                                  totalSteps: 10, learningRateBits: 0, beta1Bits: 0, beta2Bits: 0, epsBits: 0, weightDecayBits: 0,
                                  gradClipBits: 0, schedule: "constant", warmupSteps: 0, minFractionBits: 0, dataPath: "d",
                                  dataTokens: 9, seed: 1)
    let m = CheckpointManifest(step: step, tp: 1, dp: 1, reason: "periodic", created: "2026-01-01T00:00:00Z", config: config,
                               optimizer: nil, files: files, lineage: CheckpointLineage(run: "aaaa", parent: nil))
    try JSONEncoder().encode(m).write(to: URL(fileURLWithPath: path + "/manifest.json"))
  }

  /// Issue 25, item 13: the supervisor's restart line names the checkpoint the restart takes,
  /// checksums verified; a corrupt newest one (one flipped byte, sizes intact) is passed over for
  /// the previous complete one, and the line says so.
  func testTheRestartLineVerifiesChecksumsAndFallsBackPastACorruptCheckpoint() throws {
    let dir = NSTemporaryDirectory() + "tptop-verify-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    XCTAssertEqual(JobSupervisor.restartLine(incarnation: 1, resume: nil), "restarting as incarnation 1 from scratch (no checkpoint yet)")
    for (step, fill) in [(20, UInt8(1)), (40, 2)] { try verifiableCheckpoint(dir, step: step, fill: fill) }
    XCTAssertEqual(Checkpoints.latestVerified(in: dir).checkpoint?.step, 40)
    XCTAssertEqual(JobSupervisor.restartLine(incarnation: 1, resume: dir),
                   "restarting as incarnation 1 from the latest checkpoint in \(dir) (step_00000040, checksums verified)")
    // one byte of the newest shard file changed in place: same size, wrong checksum
    let model = dir + "/step_00000040/" + Checkpoints.modelFile
    let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: model))
    try handle.seek(toOffset: 2048)
    handle.write(Data([0xff]))
    try handle.close()
    let (chosen, passed) = Checkpoints.latestVerified(in: dir)
    XCTAssertEqual(chosen?.step, 20)
    XCTAssertEqual(passed.map(\.path), [dir + "/step_00000040"])
    let line = JobSupervisor.restartLine(incarnation: 2, resume: dir)
    XCTAssertTrue(line.hasPrefix("restarting as incarnation 2 from the previous complete checkpoint in \(dir) (step_00000020, "
      + "checksums verified); passed over step_00000040: model.bin checksum "), line)
    XCTAssertTrue(line.hasSuffix("(corrupt)"), line)
    XCTAssertFalse(line.contains("\n"))
    // nothing verifies: the line says so (tptrain then refuses with its own line)
    try Data(repeating: 9, count: 4099).write(to: URL(fileURLWithPath: dir + "/step_00000020/" + Checkpoints.stateFile))
    XCTAssertTrue(JobSupervisor.restartLine(incarnation: 2, resume: dir).contains("holds no checkpoint whose files verify"))
  }
}

import CheckpointLayout
import Foundation
import TPEngine
import XCTest

/// The checkpoint checksum against an independent implementation, and the manifest a real
/// checkpoint carries.
final class CheckpointFormatTests: XCTestCase {
  /// FNV-1a 64 over 8-byte little-endian words, then the trailing bytes one at a time, written
  /// out plainly from the definition in docs/CHECKPOINTS.md.
  func reference(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    let prime: UInt64 = 0x100000001b3
    var i = 0
    while i + 8 <= bytes.count {
      var w: UInt64 = 0
      for k in 0..<8 { w |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
      h = (h ^ w) &* prime
      i += 8
    }
    while i < bytes.count { h = (h ^ UInt64(bytes[i])) &* prime; i += 1 }
    return h
  }

  func testChecksumMatchesItsDefinitionAcrossChunkBoundaries() throws {
    var rng = SystemRandomNumberGenerator()
    let dir = try Harness.tempDir(self)
    // Sizes around the 8-byte word and the 1 MiB read chunk.
    for n in [0, 1, 7, 8, 9, 1000, (1 << 20) - 3, 1 << 20, (1 << 20) + 13, 3 << 20] {
      let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
      var h = FNV1a64()
      bytes.withUnsafeBytes { h.update($0) }
      XCTAssertEqual(h.value, reference(bytes), "in memory, \(n) bytes")
      let file = dir.appendingPathComponent("f\(n)").path
      try Data(bytes).write(to: URL(fileURLWithPath: file))
      let (size, sum) = try FNV1a64.file(file)
      XCTAssertEqual(size, n)
      XCTAssertEqual(sum, reference(bytes), "file, \(n) bytes")
    }
    XCTAssertEqual(FNV1a64().value, 0xcbf2_9ce4_8422_2325, "empty input is the offset basis")
  }

  func testManifestDescribesTheCheckpoint() throws {
    let dir = try Harness.tempDir(self)
    let ck = dir.appendingPathComponent("ck").path
    _ = try Harness.train(np: 2, ["--model", "tiny", "--tp", "2", "--batch", "2", "--seq", "16", "--steps", "3",
                                  "--lr", "1e-3", "--checkpoint-dir", ck, "--checkpoint-every", "3",
                                  "--quiet", "--no-telemetry"])
    let c = try CheckpointStore.validate("\(ck)/step_00000003")
    XCTAssertEqual(c.manifest.step, 3)
    XCTAssertEqual(c.manifest.tp, 2)
    XCTAssertEqual(c.manifest.dp, 1)
    XCTAssertEqual(c.manifest.reason, "final")
    XCTAssertEqual(c.manifest.checksum, FNV1a64.algorithm)
    XCTAssertEqual(c.manifest.files.map(\.name), ["model.bin", "state.bin"])
    XCTAssertEqual(c.manifest.config.model, try GPTConfig.preset("tiny"))
    XCTAssertEqual(c.manifest.config.optimizer.learningRate, 1e-3)
    XCTAssertEqual(c.manifest.optimizer?.learningRate, 0.001)
    XCTAssertEqual(c.state.step, 3)
    XCTAssertEqual(c.state.parameterCount, c.manifest.config.model.parameterCount)
    let stateBytes = try FileManager.default.attributesOfItem(atPath: c.statePath)[.size] as? Int
    XCTAssertEqual(stateBytes, trainingStateHeaderBytes + 8 * c.state.parameterCount, "header + m + v")
    for f in c.manifest.files {
      XCTAssertEqual(try FNV1a64.file("\(ck)/step_00000003/\(f.name)").checksum, UInt64(f.checksum, radix: 16))
    }
  }

  /// The run configuration's JSON (state.bin and manifest) is one flat object with these keys,
  /// as version 1 wrote it: the model shape's fields sit beside the settings, not nested.
  func testRunConfigurationJSONIsFlat() throws {
    let v1 = #"{"batch":2,"beta1Bits":1063675494,"beta2Bits":1065336439,"channels":64,"dataPath":"data.txt","#
      + #""dataTokens":1000,"epsBits":841731191,"gradClipBits":1065353216,"heads":4,"layers":2,"#
      + #""learningRateBits":981668463,"maxSeq":64,"minFractionBits":0,"paddedVocab":128,"schedule":"cosine","#
      + #""seed":1337,"seq":16,"totalSteps":3,"vocab":100,"warmupSteps":0,"weightDecayBits":0}"#
    let c = try JSONDecoder().decode(RunConfiguration.self, from: Data(v1.utf8))
    XCTAssertEqual(c.layers, 2)
    XCTAssertEqual(c.batch, 2)
    XCTAssertEqual(c.seed, 1337)
    XCTAssertEqual(c.dataPath, "data.txt")
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    XCTAssertEqual(String(decoding: try e.encode(c), as: UTF8.self), v1)
  }
}

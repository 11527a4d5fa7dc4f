// The training state saved next to the model in a checkpoint (state.bin) and described in its
// manifest: everything besides the weights that an exact resume needs.
//
// state.bin layout (little-endian):
//   [0, 4096)            header: 64 Int64 slots (see `TrainingStateHeader.Slot`), then from byte
//                        1024 the run's configuration as JSON (NUL-padded)
//   [4096, 4096 + 4P)    AdamW first moment m, fp32, global tensors in llm.c order (P = parameters)
//   [4096 + 4P, 4096 + 8P) AdamW second moment v, same order

import CheckpointLayout
import Foundation
import Glibc
import JobSchema

/// Magic number of state.bin (first Int64 slot).
public let trainingStateMagic: Int64 = 20_261_128
/// Version of the state.bin layout.
public let trainingStateVersion: Int64 = 1
/// Bytes before the first moment tensor in state.bin.
public let trainingStateHeaderBytes = 4096

extension RunConfiguration {
  /// The model shape this configuration describes.
  public var model: GPTConfig {
    GPTConfig(maxSeqLen: shape.maxSeq, vocabSize: shape.vocab, paddedVocabSize: shape.paddedVocab,
              numLayers: shape.layers, numHeads: shape.heads, channels: shape.channels)
  }
  /// The optimizer settings this configuration describes.
  public var optimizer: AdamWConfig {
    var o = AdamWConfig()
    o.learningRate = Float(bitPattern: settings.learningRateBits)
    o.beta1 = Float(bitPattern: settings.beta1Bits)
    o.beta2 = Float(bitPattern: settings.beta2Bits)
    o.eps = Float(bitPattern: settings.epsBits)
    o.weightDecay = Float(bitPattern: settings.weightDecayBits)
    o.gradClip = Float(bitPattern: settings.gradClipBits)
    return o
  }
  /// The learning-rate schedule this configuration describes (constant when the name is unknown).
  public var lrSchedule: LRSchedule {
    var s = LRSchedule()
    s.kind = LRSchedule.Kind(rawValue: settings.schedule) ?? .constant
    s.warmupSteps = settings.warmupSteps
    s.minFraction = Float(bitPattern: settings.minFractionBits)
    return s
  }

  /// The configuration of a run of model `c` with these batch, optimizer, data and seed settings.
  public init(model c: GPTConfig, batch: Int, seq: Int, totalSteps: Int, optimizer o: AdamWConfig,
              schedule s: LRSchedule, dataPath: String, dataTokens: Int, seed: UInt64) {
    let shape = ModelShape(c, batch: batch, seq: seq)
    self.init(shape: shape, totalSteps: totalSteps,
              learningRateBits: o.learningRate.bitPattern, beta1Bits: o.beta1.bitPattern, beta2Bits: o.beta2.bitPattern,
              epsBits: o.eps.bitPattern, weightDecayBits: o.weightDecay.bitPattern, gradClipBits: o.gradClip.bitPattern,
              schedule: s.kind.rawValue, warmupSteps: s.warmupSteps, minFractionBits: s.minFraction.bitPattern,
              dataPath: dataPath, dataTokens: dataTokens, seed: seed)
  }
}

extension ModelShape {
  /// The shape of model `c` trained on batches of `batch` sequences of `seq` tokens.
  public init(_ c: GPTConfig, batch: Int, seq: Int) {
    self.init(layers: c.numLayers, heads: c.numHeads, channels: c.channels, vocab: c.vocabSize,
              paddedVocab: c.paddedVocabSize, maxSeq: c.maxSeqLen, batch: batch, seq: seq)
  }
}

/// The fixed binary header of state.bin.
public struct TrainingStateHeader: Sendable, Equatable {
  /// Int64 slot indices of the header.
  enum Slot: Int {
    case magic = 0, version, step, dataPosition, seed, tp, dp, batch, seq, totalSteps
    case parameterCount, jsonBytes
  }
  /// Optimizer steps completed (the next step to run, from 0).
  public var step: Int
  /// Index of the next batch in the documented batch order (`DataLoader.start(step:)`).
  public var dataPosition: Int
  /// Tensor/data-parallel sizes at save time.
  public var tp: Int
  public var dp: Int
  /// Elements in each moment tensor (the model's global parameter count).
  public var parameterCount: Int
  /// The full run configuration.
  public var run: RunConfiguration

  public init(step: Int, dataPosition: Int, tp: Int, dp: Int, parameterCount: Int, run: RunConfiguration) {
    self.step = step; self.dataPosition = dataPosition; self.tp = tp; self.dp = dp
    self.parameterCount = parameterCount; self.run = run
  }

  /// Size of state.bin for this header.
  public var fileBytes: Int { trainingStateHeaderBytes + 8 * parameterCount }

  /// The 4096 header bytes.
  func encoded() throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: trainingStateHeaderBytes)
    let json = try JSONEncoder.sorted.encode(run)
    guard json.count <= trainingStateHeaderBytes - 1024 else {
      throw EngineError("run configuration too long for the state header (\(json.count) bytes): shorten the --data path")
    }
    let slots: [(Slot, Int64)] = [
      (.magic, trainingStateMagic), (.version, trainingStateVersion), (.step, Int64(step)),
      (.dataPosition, Int64(dataPosition)), (.seed, Int64(bitPattern: run.seed)), (.tp, Int64(tp)),
      (.dp, Int64(dp)), (.batch, Int64(run.batch)), (.seq, Int64(run.seq)),
      (.totalSteps, Int64(run.totalSteps)), (.parameterCount, Int64(parameterCount)),
      (.jsonBytes, Int64(json.count)),
    ]
    bytes.withUnsafeMutableBytes { raw in
      for (slot, v) in slots { raw.storeBytes(of: v.littleEndian, toByteOffset: 8 * slot.rawValue, as: Int64.self) }
      json.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: raw[1024..<(1024 + json.count)]))
    }
    return bytes
  }

  /// Parses the header of `path` (state.bin); throws a one-line description when it is damaged.
  public static func read(path: String) throws -> TrainingStateHeader {
    let fd = open(path, O_RDONLY)
    if fd < 0 { throw EngineError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: trainingStateHeaderBytes)
    let ok = bytes.withUnsafeMutableBytes { preadFully(fd, $0.baseAddress!, trainingStateHeaderBytes, 0) }
    if !ok { throw EngineError("\(path) is truncated: shorter than its \(trainingStateHeaderBytes)-byte header") }
    func slot(_ s: Slot) -> Int64 {
      bytes.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: 8 * s.rawValue, as: Int64.self)) }
    }
    if slot(.magic) != trainingStateMagic { throw EngineError("\(path) has wrong magic \(slot(.magic)): not a tptop training state") }
    if slot(.version) != trainingStateVersion { throw EngineError("\(path) has version \(slot(.version)); only version \(trainingStateVersion) is supported") }
    let jsonBytes = Int(slot(.jsonBytes))
    guard jsonBytes > 0 && jsonBytes <= trainingStateHeaderBytes - 1024 else {
      throw EngineError("\(path) has a damaged header (configuration length \(jsonBytes))")
    }
    let run: RunConfiguration
    do {
      run = try JSONDecoder().decode(RunConfiguration.self, from: Data(bytes[1024..<(1024 + jsonBytes)]))
    } catch {
      throw EngineError("\(path) has a damaged header (configuration is not valid JSON)")
    }
    let h = TrainingStateHeader(step: Int(slot(.step)), dataPosition: Int(slot(.dataPosition)), tp: Int(slot(.tp)),
                                dp: Int(slot(.dp)), parameterCount: Int(slot(.parameterCount)), run: run)
    if h.step < 0 || h.tp < 1 || h.dp < 1 || h.parameterCount != run.model.parameterCount {
      throw EngineError("\(path) has a damaged header (step \(h.step), tp \(h.tp), dp \(h.dp), \(h.parameterCount) parameters)")
    }
    return h
  }
}

extension JSONEncoder {
  /// An encoder with sorted keys, so equal values give equal bytes.
  static var sorted: JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return e
  }
}

// manifest.json of a checkpoint directory, and the run configuration it (and state.bin) records.

import Foundation
import JobSchema

/// The run's configuration as saved in a checkpoint: what must match (or be re-derived) on
/// resume for the continuation to be exact. Floats are kept as exact bit patterns. TPEngine adds
/// the engine-typed views (`model`, `optimizer`, `lrSchedule`) and the initialiser from them.
///
/// The model and batch dimensions are JobSchema's `ModelShape` (the type the telemetry segment
/// publishes); the rest is `RunSettings`. Both read through this type (`run.layers`,
/// `run.seed`), and the JSON keeps every field at the top level, as version 1 of state.bin and
/// the manifest have it.
@dynamicMemberLookup
public struct RunConfiguration: Codable, Sendable, Equatable {
  /// Model dimensions and batch shape.
  public var shape: ModelShape
  /// Everything else: steps, optimizer, schedule, data, seed.
  public var settings: RunSettings

  /// Creates a configuration from the model shape and the other fields.
  public init(shape: ModelShape, totalSteps: Int,
              learningRateBits: UInt32, beta1Bits: UInt32, beta2Bits: UInt32, epsBits: UInt32,
              weightDecayBits: UInt32, gradClipBits: UInt32, schedule: String, warmupSteps: Int, minFractionBits: UInt32,
              dataPath: String, dataTokens: Int, seed: UInt64) {
    self.shape = shape
    settings = RunSettings(
      totalSteps: totalSteps, learningRateBits: learningRateBits, beta1Bits: beta1Bits, beta2Bits: beta2Bits,
      epsBits: epsBits, weightDecayBits: weightDecayBits, gradClipBits: gradClipBits, schedule: schedule,
      warmupSteps: warmupSteps, minFractionBits: minFractionBits, dataPath: dataPath, dataTokens: dataTokens, seed: seed)
  }

  /// Creates a configuration from its fields (model shape, batch, optimizer bits, data, seed).
  public init(layers: Int, heads: Int, channels: Int, vocab: Int, paddedVocab: Int, maxSeq: Int,
              batch: Int, seq: Int, totalSteps: Int,
              learningRateBits: UInt32, beta1Bits: UInt32, beta2Bits: UInt32, epsBits: UInt32,
              weightDecayBits: UInt32, gradClipBits: UInt32, schedule: String, warmupSteps: Int, minFractionBits: UInt32,
              dataPath: String, dataTokens: Int, seed: UInt64) {
    self.init(
      shape: ModelShape(layers: layers, heads: heads, channels: channels, vocab: vocab, paddedVocab: paddedVocab,
                        maxSeq: maxSeq, batch: batch, seq: seq),
      totalSteps: totalSteps, learningRateBits: learningRateBits, beta1Bits: beta1Bits, beta2Bits: beta2Bits,
      epsBits: epsBits, weightDecayBits: weightDecayBits, gradClipBits: gradClipBits, schedule: schedule,
      warmupSteps: warmupSteps, minFractionBits: minFractionBits, dataPath: dataPath, dataTokens: dataTokens, seed: seed)
  }

  /// A field of the model shape.
  public subscript<T>(dynamicMember field: WritableKeyPath<ModelShape, T>) -> T {
    get { shape[keyPath: field] }
    set { shape[keyPath: field] = newValue }
  }

  /// A field of the settings.
  public subscript<T>(dynamicMember field: WritableKeyPath<RunSettings, T>) -> T {
    get { settings[keyPath: field] }
    set { settings[keyPath: field] = newValue }
  }

  /// Decodes the flat JSON object: both parts read their keys from the same object.
  public init(from decoder: Decoder) throws {
    shape = try ModelShape(from: decoder)
    settings = try RunSettings(from: decoder)
  }

  /// Encodes one flat JSON object (both parts write into the same keyed container).
  public func encode(to encoder: Encoder) throws {
    try shape.encode(to: encoder)
    try settings.encode(to: encoder)
  }
}

/// The part of a run's configuration that is not the model shape.
public struct RunSettings: Codable, Sendable, Equatable {
  /// Total optimizer steps.
  public var totalSteps: Int
  // optimizer and schedule (fp32 bit patterns)
  public var learningRateBits: UInt32
  public var beta1Bits: UInt32
  public var beta2Bits: UInt32
  public var epsBits: UInt32
  public var weightDecayBits: UInt32
  public var gradClipBits: UInt32
  public var schedule: String
  public var warmupSteps: Int
  public var minFractionBits: UInt32
  // data and randomness
  public var dataPath: String
  public var dataTokens: Int
  /// Seed of the initialisation: the only random number generator state (no RNG runs after init).
  public var seed: UInt64
}

/// manifest.json of one checkpoint directory.
public struct CheckpointManifest: Codable, Sendable, Equatable {
  /// One file of the checkpoint with its size and checksum (16 hex digits, see `FNV1a64`).
  public struct File: Codable, Sendable, Equatable {
    public var name: String
    public var bytes: Int
    public var checksum: String
    /// Creates a file entry.
    public init(name: String, bytes: Int, checksum: String) {
      self.name = name; self.bytes = bytes; self.checksum = checksum
    }
  }
  public var format: String = Checkpoints.format
  public var version: Int = 1
  /// Checksum algorithm of `files` (`Checkpoints.checksumAlgorithm`).
  public var checksum: String = Checkpoints.checksumAlgorithm
  /// Optimizer steps completed.
  public var step: Int
  /// Tensor/data-parallel sizes at save time.
  public var tp: Int
  public var dp: Int
  /// Why it was written: "periodic", "request", "signal SIGTERM", "final".
  public var reason: String
  /// UTC time of writing, ISO 8601.
  public var created: String
  public var config: RunConfiguration
  /// The optimizer settings of `config` as decimal numbers, for people (not read back).
  public var optimizer: ReadableOptimizer?
  public var files: [File]
  /// The run that wrote it (`CheckpointLineage.run`); nil in checkpoints written before runs
  /// were named. A run prunes only its own checkpoints.
  public var run: String?
  /// The checkpoint the run resumed from, nil for a run from scratch (or an unnamed run).
  public var parent: ParentCheckpoint?

  /// Creates a manifest of the current format.
  public init(step: Int, tp: Int, dp: Int, reason: String, created: String, config: RunConfiguration,
              optimizer: ReadableOptimizer?, files: [File], lineage: CheckpointLineage? = nil) {
    self.step = step; self.tp = tp; self.dp = dp; self.reason = reason; self.created = created
    self.config = config; self.optimizer = optimizer; self.files = files
    self.run = lineage?.run; self.parent = lineage?.parent
  }

  /// Reads and decodes the manifest of checkpoint directory `path`, checking its format.
  /// - Throws: `ManifestError` saying what is wrong (missing, damaged, another format).
  public static func read(checkpoint path: String) throws(ManifestError) -> CheckpointManifest {
    let file = Checkpoints.manifestFile
    guard let data = FileManager.default.contents(atPath: path + "/" + file) else {
      throw ManifestError("no \(file) (incomplete checkpoint)")
    }
    let m: CheckpointManifest
    do { m = try JSONDecoder().decode(CheckpointManifest.self, from: data) } catch {
      throw ManifestError("\(file) is not a valid manifest (damaged)")
    }
    if m.format != Checkpoints.format || m.version != 1 || m.checksum != Checkpoints.checksumAlgorithm {
      throw ManifestError("\(file) has format '\(m.format)' version \(m.version), expected '\(Checkpoints.format)' version 1")
    }
    return m
  }
}

/// Why a manifest could not be read.
public struct ManifestError: Error, Sendable, CustomStringConvertible {
  /// One line, without the checkpoint's path.
  public var message: String
  /// Creates an error with its message.
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// AdamW and schedule settings in decimal, written into manifests next to the exact bit patterns.
public struct ReadableOptimizer: Codable, Sendable, Equatable {
  public var learningRate: Double
  public var beta1: Double
  public var beta2: Double
  public var eps: Double
  public var weightDecay: Double
  public var gradClip: Double
  public var schedule: String
  public var warmupSteps: Int
  public var minFraction: Double

  /// The decimal view of `c`'s optimizer bit patterns.
  public init(_ c: RunConfiguration) {
    // The shortest decimal that reads back as the same Float, e.g. 0.0003 rather than 0.000300000014.
    func decimal(_ bits: UInt32) -> Double { let f = Float(bitPattern: bits); return Double("\(f)") ?? Double(f) }
    learningRate = decimal(c.learningRateBits); beta1 = decimal(c.beta1Bits); beta2 = decimal(c.beta2Bits)
    eps = decimal(c.epsBits); weightDecay = decimal(c.weightDecayBits); gradClip = decimal(c.gradClipBits)
    schedule = c.schedule; warmupSteps = c.warmupSteps; minFraction = decimal(c.minFractionBits)
  }
}

/// The checkpoint a run resumed from, as its manifest records it.
public struct ParentCheckpoint: Codable, Sendable, Equatable {
  /// The run that wrote the parent (nil: a checkpoint of an unnamed run).
  public var run: String?
  /// Its step.
  public var step: Int
  /// Its directory, as the resumed run named it.
  public var path: String

  /// Creates a parent reference.
  public init(run: String?, step: Int, path: String) {
    self.run = run; self.step = step; self.path = path
  }
}

/// Which run a checkpoint belongs to. Every tptrain invocation is a run of its own, with a fresh
/// id; a resumed one (by hand, or a supervised restart) is a new branch whose parent is the
/// checkpoint it resumed from. Pruning removes only the run's own checkpoints, so a branch never
/// deletes its parent's, its starting point, or another run's sharing the directory.
public struct CheckpointLineage: Sendable, Equatable {
  /// This run's id: 16 hex digits.
  public var run: String
  /// The checkpoint it resumed from.
  public var parent: ParentCheckpoint?

  /// Creates a lineage.
  public init(run: String, parent: ParentCheckpoint?) {
    self.run = run; self.parent = parent
  }

  /// A new run with a random id, resumed from `parent` (nil: from scratch).
  public static func newRun(parent: ParentCheckpoint?) -> CheckpointLineage {
    let id = UInt64.random(in: 1...UInt64.max)
    let hex = String(id, radix: 16)
    return CheckpointLineage(run: String(repeating: "0", count: 16 - hex.count) + hex, parent: parent)
  }
}

// Model and parallel configuration, with the checks that reject impossible splits at start-up.

/// A user-facing configuration or input error: one line naming the problem and the fix.
public struct EngineError: Error, CustomStringConvertible, Sendable {
  public let message: String
  /// Every rank throws this same error at the same point (the ranks agreed on it through a
  /// collective), so one rank can say it for all and every rank can end cleanly.
  public let collective: Bool
  public init(_ message: String) { self.message = message; collective = false }
  /// An error every rank throws alike (see `collective`).
  public static func agreed(_ message: String) -> EngineError { EngineError(message, collective: true) }
  init(_ message: String, collective: Bool) { self.message = message; self.collective = collective }
  public var description: String { message }
}

/// GPT-2 hyper-parameters, as in llm.c's `GPT2Config`.
public struct GPTConfig: Sendable, Equatable {
  public var maxSeqLen: Int  // maxT
  public var vocabSize: Int  // V
  public var paddedVocabSize: Int  // Vp
  public var numLayers: Int  // L
  public var numHeads: Int  // H
  public var channels: Int  // C

  public init(maxSeqLen: Int, vocabSize: Int, paddedVocabSize: Int, numLayers: Int, numHeads: Int,
              channels: Int) {
    self.maxSeqLen = maxSeqLen
    self.vocabSize = vocabSize
    self.paddedVocabSize = paddedVocabSize
    self.numLayers = numLayers
    self.numHeads = numHeads
    self.channels = channels
  }

  /// Named presets.
  public static func preset(_ name: String) throws -> GPTConfig {
    switch name {
    case "tiny":
      return GPTConfig(maxSeqLen: 64, vocabSize: 256, paddedVocabSize: 256, numLayers: 2, numHeads: 4, channels: 64)
    case "small":
      return GPTConfig(maxSeqLen: 256, vocabSize: 256, paddedVocabSize: 256, numLayers: 6, numHeads: 6, channels: 384)
    case "gpt2-124m", "gpt2":
      return GPTConfig(maxSeqLen: 1024, vocabSize: 50257, paddedVocabSize: 50304, numLayers: 12, numHeads: 12, channels: 768)
    default:
      throw EngineError("unknown model preset '\(name)': use tiny, small or gpt2-124m, or give --layers --heads --channels --vocab --max-seq")
    }
  }

  public static let presetNames = ["tiny", "small", "gpt2-124m"]

  /// Vocabulary padded up to a multiple of 128 (llm.c's rule for 50257 → 50304), unless it is
  /// already a multiple of 64.
  public static func paddedVocab(for v: Int) -> Int {
    if v % 64 == 0 { return v }
    return (v + 127) / 128 * 128
  }

  public var headSize: Int { channels / numHeads }

  /// Parameter count of the full (unsharded) model, padded vocabulary included.
  public var parameterCount: Int {
    let (L, C, Vp, T) = (numLayers, channels, paddedVocabSize, maxSeqLen)
    return Vp * C + T * C + L * (2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C + 4 * C + 4 * C * C + C) + 2 * C
  }

  /// Model FLOPs per token for forward + backward (6N plus attention, PaLM appendix B), with N
  /// counting the real-vocabulary LM head and no position embedding.
  public func flopsPerToken(seqLen T: Int) -> Double {
    let (L, C) = (numLayers, channels)
    let n = Double(L * 12 * C * C + vocabSize * C)
    return 6 * n + 12 * Double(L * C * T)
  }

  /// Checks internal consistency; throws one line naming the problem.
  public func validate() throws {
    if numLayers < 1 || numHeads < 1 || channels < 1 || vocabSize < 2 || maxSeqLen < 1 {
      throw EngineError("model sizes must be positive: layers \(numLayers), heads \(numHeads), channels \(channels), vocab \(vocabSize), max-seq \(maxSeqLen)")
    }
    if channels % numHeads != 0 {
      throw EngineError("channels \(channels) is not divisible by heads \(numHeads): pick channels a multiple of heads (e.g. \(numHeads * max(1, channels / numHeads)))")
    }
    if paddedVocabSize < vocabSize {
      throw EngineError("padded vocab \(paddedVocabSize) is smaller than vocab \(vocabSize)")
    }
  }
}

/// `numerator / denominator`, refusing a remainder (Megatron's `divide`).
public func divide(_ numerator: Int, _ denominator: Int, _ what: String) throws -> Int {
  guard denominator > 0, numerator % denominator == 0 else {
    throw EngineError("\(what): \(numerator) is not divisible by \(denominator)")
  }
  return numerator / denominator
}

/// Where this rank sits in the TP × DP grid. TP ranks are contiguous: tp = rank % t.
public struct ParallelLayout: Sendable, Equatable {
  public var worldSize: Int
  public var worldRank: Int
  public var tp: Int
  public var dp: Int
  public var tpRank: Int { worldRank % tp }
  public var dpRank: Int { worldRank / tp }

  /// Resolves t and d from the flags (either may be omitted) and checks the grid.
  public init(worldSize: Int, worldRank: Int, tp: Int?, dp: Int?) throws {
    self.worldSize = worldSize
    self.worldRank = worldRank
    switch (tp, dp) {
    case let (t?, d?):
      self.tp = t
      self.dp = d
    case let (t?, nil):
      self.tp = t
      self.dp = t > 0 && worldSize % t == 0 ? worldSize / t : 0
    case let (nil, d?):
      self.dp = d
      self.tp = d > 0 && worldSize % d == 0 ? worldSize / d : 0
    case (nil, nil):
      self.tp = worldSize
      self.dp = 1
    }
    if self.tp < 1 || self.dp < 1 || self.tp * self.dp != worldSize {
      switch (tp, dp) {
      case let (t?, nil):
        // only --tp given: dp would be world / tp, which does not divide
        throw EngineError("world size \(worldSize) does not divide by --tp \(t): start mpirun with -np a multiple of \(t) (-np \(t) for dp 1) or pick a --tp that divides \(worldSize)")
      case let (nil, d?):
        throw EngineError("world size \(worldSize) does not divide by --dp \(d): start mpirun with -np a multiple of \(d) or pick a --dp that divides \(worldSize)")
      default:
        throw EngineError("world size \(worldSize) is not tp × dp (tp \(tp ?? 0), dp \(dp ?? 0)): start mpirun with -np \((tp ?? 1) * (dp ?? 1)) or pick --tp/--dp whose product is \(worldSize)")
      }
    }
  }

  /// Checks that the model splits evenly over `tp` ranks.
  public func validate(_ c: GPTConfig) throws {
    var fixes: [String] = []
    let divisors = (1...max(1, c.numHeads)).filter { c.numHeads % $0 == 0 && (4 * c.channels) % $0 == 0 && c.paddedVocabSize % $0 == 0 }
    if c.numHeads % tp != 0 { fixes.append("heads \(c.numHeads) % tp \(tp) = \(c.numHeads % tp)") }
    if (4 * c.channels) % tp != 0 { fixes.append("4C \(4 * c.channels) % tp \(tp) = \((4 * c.channels) % tp)") }
    if c.paddedVocabSize % tp != 0 { fixes.append("padded vocab \(c.paddedVocabSize) % tp \(tp) = \(c.paddedVocabSize % tp)") }
    if !fixes.isEmpty {
      throw EngineError("cannot split the model over tp=\(tp): \(fixes.joined(separator: ", ")); tp must divide heads, 4C and padded vocab — tp in {\(divisors.map(String.init).joined(separator: ", "))} would work")
    }
  }
}

/// Sizes one TP rank works with.
public struct LocalShape: Sendable {
  public let config: GPTConfig
  public let tp: Int
  public let tpRank: Int
  public let headsLocal: Int  // H / t
  public let channelsLocal: Int  // C / t  (= heads local × head size)
  public let hiddenLocal: Int  // 4C / t
  public let vocabLocal: Int  // Vp / t
  public let vocabStart: Int  // first global vocabulary row of this rank
  /// Rows of this rank's vocabulary range that are real (< V).
  public let vocabValid: Int

  public init(config c: GPTConfig, tp: Int, tpRank: Int) throws {
    self.config = c
    self.tp = tp
    self.tpRank = tpRank
    headsLocal = try divide(c.numHeads, tp, "heads per rank")
    channelsLocal = headsLocal * c.headSize
    hiddenLocal = try divide(4 * c.channels, tp, "MLP rows per rank")
    vocabLocal = try divide(c.paddedVocabSize, tp, "vocabulary rows per rank")
    vocabStart = tpRank * vocabLocal
    vocabValid = max(0, min(vocabLocal, c.vocabSize - vocabStart))
  }
}

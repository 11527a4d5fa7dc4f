// What one rank's memory holds, by category: what the engine allocated (from its buffers'
// lengths) and what docs/MEMORY.md's closed formula predicts from the model and the grid. The
// two are computed independently, so the test that compares them checks the formula.

/// Bytes of one rank's memory by category (fp32). `other` is what the process holds beyond
/// them (libraries, MPI, code, small scratch): its resident set minus the four.
public struct MemoryBreakdown: Sendable, Equatable {
  public var parameters = 0
  public var gradients = 0
  /// AdamW's m and v (this rank's partition of them under the distributed optimizer).
  public var optimizer = 0
  /// The activation arena, backward scratch included.
  public var activations = 0
  public init() {}
  public init(parameters: Int, gradients: Int, optimizer: Int, activations: Int) {
    self.parameters = parameters
    self.gradients = gradients
    self.optimizer = optimizer
    self.activations = activations
  }
  /// The four categories together.
  public var total: Int { parameters + gradients + optimizer + activations }
}

extension GPT {
  /// The bytes this rank's buffers hold: the parameter and gradient buffers (with the
  /// distributed optimizer's padding), AdamW's two moment buffers, the activation arena.
  public var memory: MemoryBreakdown {
    MemoryBreakdown(parameters: parameterBytes, gradients: parameterBytes, optimizer: optimizerBytes,
                    activations: activationBytes)
  }
}

/// docs/MEMORY.md's per-rank formula, written out from the model's shapes rather than from the
/// engine's tables (L layers, C channels, H heads, Vp padded vocabulary, maxT positions; B, T
/// the batch and sequence; t, d the grid).
public enum MemoryFormula {
  /// Parameters of one TP rank: Vp·C/t + maxT·C + L·(12C²/t + 7C/t + 6C) + 2C.
  public static func localParameters(_ c: GPTConfig, tp t: Int) -> Int {
    let (L, C, Vp, maxT) = (c.numLayers, c.channels, c.paddedVocabSize, c.maxSeqLen)
    return Vp * C / t + maxT * C + L * (12 * C * C / t + 7 * C / t + 6 * C) + 2 * C
  }

  /// Floats of the activation arena: L·B·T·(4C + 12C/t + 4) + L·B·(H/t)·T² + B·T·(5C + 8C/t + Vp/t + 6).
  public static func activationFloats(_ c: GPTConfig, batch B: Int, seq T: Int, tp t: Int) -> Int {
    let (L, C, H, Vp, BT) = (c.numLayers, c.channels, c.numHeads, c.paddedVocabSize, B * T)
    return L * BT * (4 * C + 12 * C / t + 4) + L * B * (H / t) * T * T + BT * (5 * C + 8 * C / t + Vp / t + 6)
  }

  /// One rank's bytes at (t, d) with or without the distributed optimizer (a no-op at d = 1).
  public static func perRank(_ c: GPTConfig, batch B: Int, seq T: Int, tp t: Int, dp d: Int,
                             distributedOptimizer: Bool) -> MemoryBreakdown {
    let p = localParameters(c, tp: t)
    let shards = distributedOptimizer ? d : 1
    let padded = (p + shards - 1) / shards * shards
    return MemoryBreakdown(parameters: 4 * padded, gradients: 4 * padded, optimizer: 2 * 4 * padded / shards,
                           activations: 4 * activationFloats(c, batch: B, seq: T, tp: t))
  }
}

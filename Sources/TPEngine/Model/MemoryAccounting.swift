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

  /// Floats of the activation arena (docs/MEMORY.md), with R = B·T/t token rows per rank under
  /// sequence parallelism (else B·T), Lk layers of activations kept (1 under full recomputation,
  /// else L), La layers of attention probabilities kept (L without recomputation, else 1) and
  /// S = 1 for sequence parallelism's two full-row buffers:
  /// R·C·(5 + 3Lk + L) + R·(4Lk + 2) + B·T·(C/t)·(12Lk + 8) + La·B·(H/t)·T² + B·T·Vp/t + 4·B·T + S·2·B·T·C.
  public static func activationFloats(_ c: GPTConfig, batch B: Int, seq T: Int, tp t: Int,
                                      options: ActivationOptions = .init()) -> Int {
    let (L, C, H, Vp, BT) = (c.numLayers, c.channels, c.numHeads, c.paddedVocabSize, B * T)
    let R = options.sequenceParallel ? BT / t : BT
    let (Lk, La) = (options.layersKept(L), options.attentionLayersKept(L))
    let S = options.sequenceParallel ? 1 : 0
    return R * C * (5 + 3 * Lk + L) + R * (4 * Lk + 2) + BT * (C / t) * (12 * Lk + 8) + La * B * (H / t) * T * T
      + BT * Vp / t + 4 * BT + S * 2 * BT * C
  }

  /// One rank's bytes at (t, d) with or without the distributed optimizer (a no-op at d = 1).
  public static func perRank(_ c: GPTConfig, batch B: Int, seq T: Int, tp t: Int, dp d: Int,
                             distributedOptimizer: Bool, activations options: ActivationOptions = .init()) -> MemoryBreakdown {
    let p = localParameters(c, tp: t)
    let shards = distributedOptimizer ? d : 1
    let padded = (p + shards - 1) / shards * shards
    return MemoryBreakdown(parameters: 4 * padded, gradients: 4 * padded, optimizer: 2 * 4 * padded / shards,
                           activations: 4 * activationFloats(c, batch: B, seq: T, tp: t, options: options))
  }
}

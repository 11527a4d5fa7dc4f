// What the engine keeps of the forward pass for the backward: the activation-memory options
// (sequence parallelism, activation recomputation) and the recomputation itself.

import JobSchema
import TPKernels

/// Which activations the backward recomputes instead of keeping them (one enum for the flag,
/// the engine and the segment header).
public typealias Recompute = RunFeatures.Recompute

/// How one rank holds its activations; fixed for a run (the arena is laid out from it).
public struct ActivationOptions: Sendable, Equatable {
  /// Sequence parallelism: outside the tensor-parallel blocks each TP rank keeps only its 1/t
  /// of the B·T token rows (needs B·T divisible by t).
  public var sequenceParallel = false
  public var recompute = Recompute.none
  public init(sequenceParallel: Bool = false, recompute: Recompute = .none) {
    self.sequenceParallel = sequenceParallel
    self.recompute = recompute
  }

  /// Layers whose LayerNorm, QKV, attention output, residual2 and MLP activations are kept (L,
  /// or one working layer under full recomputation).
  func layersKept(_ L: Int) -> Int { recompute == .full ? 1 : L }
  /// Layers whose attention probabilities are kept (L, or one working layer when recomputed).
  func attentionLayersKept(_ L: Int) -> Int { recompute == .none ? L : 1 }
}

extension GPT {
  /// Full recomputation: layer `l`'s forward again, from its kept input up to the MLP's GELU
  /// (the MLP projection's output only made the next layer's input, which is kept), into the
  /// working layer the backward reads. Bit-identical to the first forward: the same kernels on
  /// the same inputs with the same splits, and the same collectives.
  func recomputeLayer(_ l: Int) {
    let layer = layerActivations(l)
    layernormForward(layer.ln1, layer.ln1Mean, layer.ln1Rstd, layer.residual, params.ln1w + l * config.channels,
                     params.ln1b + l * config.channels, rows, config.channels, pool: pool)
    layerForward(l, through: .mlpActivation)
  }

  /// Selective recomputation: layer `l`'s attention probabilities from its kept Q and K.
  func recomputeAttention(_ l: Int) {
    let layer = layerActivations(l)
    attentionProbabilities(layer.att, layer.qkv, B, T, local.headsLocal, config.headSize, pool: pool)
  }
}

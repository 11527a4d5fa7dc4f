// The data-parallel half of a step, chosen once when the trainer is built (Megatron's DDP wrapper
// plus its optimizer): how the DP replicas' gradients are summed, the global gradient norm, and
// the AdamW update. Two forms:
//   ReplicatedOptimizer    every replica all-reduces the whole gradient and updates everything
//   DistributedOptimizer   reduce-scatter, AdamW on this rank's block, all-gather (ZeRO 1)
// With --overlap-grad-reduce the gradient buckets have done the reduction during the backward,
// in either form; `synchronizeGradients` then only waits for the last of them.

import TPComm

/// Gradient reduction, norm and update of one step. Allocates nothing after `init`.
public protocol DataParallelOptimizer: AnyObject {
  /// Sums the DP replicas' gradients after the backward (for the distributed form: this rank's
  /// block only).
  func synchronizeGradients()
  /// The global norm of `scale · grads` after `synchronizeGradients`; with `perTensor`, each
  /// local tensor's full Σ(scale·g)² is left there (`ParameterViews.tensorCount` doubles).
  func gradientNorm(scale: Float, perTensor: UnsafeMutablePointer<Double>?) -> Float
  /// One AdamW update with gradients `gradScale · grads`. `gradSquares` and `stats` are as for
  /// `GPT.adamWUpdate`, whole over DP.
  func update(_ o: AdamWConfig, lr: Float, t: Int, gradScale: Float,
              gradSquares: UnsafeMutablePointer<Double>?, stats: UnsafeMutablePointer<Double>?)
  /// Makes the whole reduced gradient readable on this rank (debug dumps only).
  func gatherGradients()
}

/// The replicated form: every DP rank holds and updates all of its TP shard's parameters.
public final class ReplicatedOptimizer: DataParallelOptimizer {
  public let model: GPT
  public let dpGroup: Communicator
  public let tpGroup: Communicator
  /// Buckets reduced during the backward (--overlap-grad-reduce at d > 1), else nil.
  let buckets: GradientBuckets?

  init(model: GPT, dpGroup: Communicator, tpGroup: Communicator, buckets: GradientBuckets?) {
    self.model = model
    self.dpGroup = dpGroup
    self.tpGroup = tpGroup
    self.buckets = buckets
    dpGroup.reserveScratch(bytes: 4 * model.numLocalParameters)
  }

  public func synchronizeGradients() {
    if let buckets {
      buckets.finish()
    } else if dpGroup.size > 1 {
      dpGroup.allReduce(model.gradsMemory, count: model.numLocalParameters, .sum)
    }
  }

  public func gradientNorm(scale: Float, perTensor: UnsafeMutablePointer<Double>?) -> Float {
    model.gradientNorm(tpGroup: tpGroup, scale: scale, perTensor: perTensor)
  }

  public func update(_ o: AdamWConfig, lr: Float, t: Int, gradScale: Float,
                     gradSquares: UnsafeMutablePointer<Double>?, stats: UnsafeMutablePointer<Double>?) {
    model.adamWUpdate(o, lr: lr, t: t, gradScale: gradScale, gradSquares: gradSquares, stats: stats)
  }

  public func gatherGradients() {}
}

// The distributed optimizer (ZeRO stage 1 over the DP group, as Megatron's): the DP replicas
// reduce-scatter their gradients instead of all-reducing them, each keeps AdamW's m and v for
// its 1/d of the local (TP-shard) parameters only and updates that part, and the updated
// parameters are all-gathered. Gradient clipping still sees the true global norm: each replica
// sums Σg² over its part, the parts are summed over DP, and replicated tensors count once over TP.

import JobSchema
import TPComm
import TPKernels

/// The DP side of a step under `--distributed-optimizer`: reduce-scatter of the gradients,
/// global norm, AdamW on this rank's block, all-gather of the updated parameters. Allocates
/// nothing after `init`.
public final class DistributedOptimizer: DataParallelOptimizer {
  public let model: GPT
  public let dpGroup: Communicator
  public let tpGroup: Communicator
  /// Buckets that reduce-scatter into the blocks during the backward (--overlap-grad-reduce), else nil.
  let buckets: GradientBuckets?
  public var partition: OptimizerPartition { model.partition }

  /// `model` must have been built with a partition over `dpGroup`.
  init(model: GPT, dpGroup: Communicator, tpGroup: Communicator, buckets: GradientBuckets? = nil) {
    precondition(model.partition.shards == dpGroup.size && model.partition.index == dpGroup.rank,
                 "the model's optimizer partition is the DP group's")
    self.model = model
    self.dpGroup = dpGroup
    self.tpGroup = tpGroup
    self.buckets = buckets
    // the ring reduce-scatters and gathers the padded buffer in place, a block per step
    dpGroup.reserveScratch(bytes: 4 * model.partition.paddedCount)
  }

  /// Sums the DP replicas' gradients, leaving this rank's block of `model.gradsMemory` reduced
  /// (the other blocks are undefined afterwards).
  public func synchronizeGradients() {
    if let buckets { buckets.finish(); return }
    let p = partition
    dpGroup.reduceScatter(model.gradsMemory, count: p.shardCount, into: model.gradsMemory + p.block.lowerBound)
  }

  /// Gathers every block of the gradient (debug dumps only: the step itself never needs it).
  public func gatherGradients() {
    let p = partition
    dpGroup.allGather(model.gradsMemory + p.block.lowerBound, count: p.shardCount, into: model.gradsMemory)
  }

  /// The global norm of `scale · grads` after `reduceScatterGradients`: Σg² over this rank's
  /// block per tensor, summed over DP, then over TP (replicated tensors once). With
  /// `perTensor`, also leaves each local tensor's full Σ(scale·g)² there.
  public func gradientNorm(scale: Float, perTensor: UnsafeMutablePointer<Double>?) -> Float {
    let squares = perTensor ?? model.normScratch
    model.tensorSquares(squares, scale: scale, range: partition.range)
    dpGroup.allReduce(squares, count: ParameterViews.tensorCount, .sum)
    return model.globalNorm(tensorSquares: squares, tpGroup: tpGroup)
  }

  /// AdamW on this rank's block, then the all-gather that gives every DP rank the whole updated
  /// parameter buffer. `gradSquares` and `stats` are as for `GPT.adamWUpdate`, summed over DP.
  public func update(_ o: AdamWConfig, lr: Float, t: Int, gradScale: Float,
                     gradSquares: UnsafeMutablePointer<Double>?, stats: UnsafeMutablePointer<Double>?) {
    let p = partition
    model.adamWUpdate(o, lr: lr, t: t, gradScale: gradScale, range: p.range, gradSquares: gradSquares, stats: stats)
    dpGroup.allGather(model.paramsMemory + p.block.lowerBound, count: p.shardCount, into: model.paramsMemory)
    let n = ParameterViews.tensorCount
    if let gradSquares { dpGroup.allReduce(gradSquares, count: n, .sum) }
    if let stats { dpGroup.allReduce(stats, count: 2 * n, .sum) }
  }
}

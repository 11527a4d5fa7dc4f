// The run's parallel configuration, resolved once against its grid (as Megatron's
// validate_args resolves the arguments into TransformerConfig and the DDP config): each feature
// is on here only where it does something, so no component asks again whether a flag "really"
// applies (`--overlap-grad-reduce` at d = 1, `--overlap-tp` at t = 1, the distributed optimizer
// at d = 1). The model, the trainer, the checkpoint store, the gradient buckets, the start-up
// line and the segment header all read this.

import JobSchema

/// Tensor × data parallel sizes and the features in force on that grid.
public struct ParallelConfig: Sendable, Equatable {
  /// Tensor-parallel size t and data-parallel size d.
  public var tp: Int, dp: Int
  /// Sequence parallelism and activation recomputation.
  public var activations: ActivationOptions
  /// DP ranks the AdamW state is partitioned over: d under the distributed optimizer at d > 1, else 1.
  public var optimizerShards: Int
  /// Bytes per DP gradient bucket when the gradients reduce during the backward
  /// (`--overlap-grad-reduce` at d > 1); nil: one reduction after it.
  public var gradientBucketBytes: Int?
  /// The tensor-parallel collectives pipelined with the GEMMs (`--overlap-tp` at t > 1).
  public var overlapTP: Bool
  /// Row chunks per tensor-parallel collective asked for (1 without `overlapTP`); the model may
  /// use fewer (chunks are at least 64 rows).
  public var tpChunks: Int

  /// The default gradient bucket (BENCHMARKS.md).
  public static let defaultBucketBytes = 4 << 20

  /// Resolves the features asked for on a t × d grid.
  public init(tp: Int, dp: Int, activations: ActivationOptions = .init(), distributedOptimizer: Bool = false,
              overlapGradReduce: Bool = false, bucketBytes: Int = ParallelConfig.defaultBucketBytes,
              overlapTP: Bool = false, tpChunks: Int = 1) {
    self.tp = tp
    self.dp = dp
    self.activations = activations
    optimizerShards = distributedOptimizer && dp > 1 ? dp : 1
    gradientBucketBytes = overlapGradReduce && dp > 1 ? max(4, bucketBytes) : nil
    self.overlapTP = overlapTP && tp > 1
    self.tpChunks = self.overlapTP ? max(1, tpChunks) : 1
  }

  /// The AdamW state is partitioned over DP (ZeRO stage 1).
  public var distributedOptimizer: Bool { optimizerShards > 1 }
  /// The DP gradients reduce in buckets during the backward.
  public var overlapGradReduce: Bool { gradientBucketBytes != nil }

  /// The segment header's word for these features.
  public var features: RunFeatures {
    RunFeatures(sequenceParallel: activations.sequenceParallel, distributedOptimizer: distributedOptimizer,
                recompute: activations.recompute, overlapGradReduce: overlapGradReduce, overlapTP: overlapTP)
  }
}

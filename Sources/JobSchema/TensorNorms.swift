/// Norms of one tensor shard on one rank, as the engine measures them every few steps: the L2
/// norm of the local weights (after the update), of the local gradient (before clipping), and
/// the update/weight ratio ‖Δθ‖/‖θ‖.
public struct TensorNorms: Sendable, Equatable {
  /// ‖θ‖ of the local shard.
  public var weightNorm: Float
  /// ‖g‖ of the local shard.
  public var gradNorm: Float
  /// ‖Δθ‖/‖θ‖ of the update.
  public var updateRatio: Float

  /// Creates the norms of one shard.
  public init(weightNorm: Float, gradNorm: Float, updateRatio: Float) {
    self.weightNorm = weightNorm
    self.gradNorm = gradNorm
    self.updateRatio = updateRatio
  }
}

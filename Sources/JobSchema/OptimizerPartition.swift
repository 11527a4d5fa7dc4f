// How the distributed optimizer divides a rank's optimizer state among the DP ranks: defined
// once for the engine (which allocates and updates by it) and the dashboard (which shows it).

/// Which part of the flat local parameter buffer (`GPT.numLocalParameters` floats, llm.c order)
/// this rank's optimizer state covers. Without the distributed optimizer that is all of it;
/// with it over d DP ranks, the buffer is padded once to a multiple of d and DP rank r holds
/// block r of d equal blocks.
public struct OptimizerPartition: Sendable, Equatable {
  /// DP ranks sharing the optimizer state (1: every rank holds all of it).
  public let shards: Int
  /// This rank's block.
  public let index: Int
  /// The flat local parameter count.
  public let count: Int
  /// `count` rounded up to a multiple of `shards`: the length of the parameter and gradient
  /// buffers, so the collectives move equal blocks.
  public let paddedCount: Int
  /// Elements per block: the length of this rank's AdamW moment buffers.
  public var shardCount: Int { paddedCount / shards }
  /// This rank's block of the padded flat buffer.
  public var block: Range<Int> { index * shardCount..<(index + 1) * shardCount }
  /// The real parameters in this rank's block (the padding excluded; may be empty).
  public var range: Range<Int> { min(count, block.lowerBound)..<min(count, block.upperBound) }

  /// The part of a tensor lying at `tensor` in the flat buffer whose optimizer state this rank
  /// holds, relative to the tensor's first element (empty when none).
  public func slice(ofTensorAt tensor: Range<Int>) -> Range<Int> {
    let lo = max(tensor.lowerBound, block.lowerBound), hi = min(tensor.upperBound, block.upperBound)
    return lo < hi ? (lo - tensor.lowerBound)..<(hi - tensor.lowerBound) : 0..<0
  }

  /// The partition of `count` parameters over `shards` DP ranks, seen from rank `index`.
  public init(count: Int, shards: Int = 1, index: Int = 0) {
    precondition(shards >= 1 && index >= 0 && index < shards, "a DP rank of the group")
    self.count = count
    self.shards = shards
    self.index = index
    paddedCount = (count + shards - 1) / shards * shards
  }
}

/// One parameter tensor's global shape and each tensor-parallel rank's part of it, as the job
/// publishes it in the telemetry segment and the dashboard's shard view shows it.
public struct ShardedTensor: Sendable, Equatable {
  /// Parameter name, e.g. "qkvw" (at most 47 UTF-8 bytes are stored in the segment).
  public var name: String
  /// Global shape, 1 to 4 dimensions, e.g. [L, 3C, C].
  public var shape: [Int]
  /// How the tensor is split.
  public var split: SplitKind
  /// Index into `shape` of the split dimension; nil when replicated.
  public var splitDim: Int?
  /// Per TP rank: half-open ranges along `splitDim` (QKV has three per rank; at most 4).
  public var ranks: [[Range<Int>]]
  /// Per TP rank: a human description, e.g. "heads 0–2 of 6" (at most 55 UTF-8 bytes stored).
  public var rankDescriptions: [String]

  /// Creates a tensor description.
  public init(
    name: String, shape: [Int], split: SplitKind, splitDim: Int?, ranks: [[Range<Int>]], rankDescriptions: [String]
  ) {
    self.name = name
    self.shape = shape
    self.split = split
    self.splitDim = splitDim
    self.ranks = ranks
    self.rankDescriptions = rankDescriptions
  }

  /// Elements in the whole tensor.
  public var globalCount: Int { shape.reduce(1, *) }

  /// Elements held by TP rank `tp` (the whole tensor when replicated or unknown).
  public func localCount(tp: Int) -> Int {
    guard let d = splitDim, d < shape.count, shape[d] > 0, tp >= 0, tp < ranks.count else { return globalCount }
    let held = ranks[tp].reduce(0) { $0 + $1.count }
    return globalCount / shape[d] * held
  }
}

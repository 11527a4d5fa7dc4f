// How every parameter tensor is divided among the TP ranks. Used by checkpoint I/O (each rank
// reads and writes only its slices), by the gradient-equivalence tests, and published in the
// telemetry segment for the dashboard's shard inspector.

/// Megatron split kinds.
public enum SplitKind: Int32, Sendable {
  /// Every TP rank holds the whole tensor.
  case replicated = 0
  /// Output rows split (column-parallel linear: Y = X A, A split by columns = our rows).
  case column = 1
  /// Input columns split (row-parallel linear).
  case row = 2
  /// Vocabulary rows split (vocab-parallel embedding / LM head).
  case vocab = 3
}

/// One contiguous range along a tensor's split dimension (per layer for stacked tensors).
public struct SliceRange: Sendable, Equatable {
  public var start: Int
  public var end: Int  // exclusive
  public var count: Int { end - start }
  public init(_ start: Int, _ end: Int) { self.start = start; self.end = end }
}

/// A parameter tensor in llm.c order, with its global shape and how it is split.
public struct TensorShard: Sendable {
  public var name: String
  /// Global shape as llm.c stores it, e.g. [L, 3C, C] for qkvw.
  public var shape: [Int]
  public var split: SplitKind
  /// The dimension (index into `shape`) that is split; nil when replicated.
  public var splitDim: Int?
  /// For each TP rank, its ranges along `splitDim` (QKV has three: its Q, K and V rows).
  public var ranks: [[SliceRange]]
  /// Human description of a rank's part, e.g. "heads 0–2 of 6".
  public var rankDescriptions: [String]

  public var globalCount: Int { shape.reduce(1, *) }
  /// Elements rank `r` holds.
  public func localCount(rank r: Int) -> Int {
    guard let d = splitDim else { return globalCount }
    let per = ranks[r].reduce(0) { $0 + $1.count }
    return globalCount / shape[d] * per
  }
}

// How every parameter tensor is divided among the TP ranks. Used by checkpoint I/O (each rank
// reads and writes only its slices), by the gradient-equivalence tests, and published in the
// telemetry segment for the dashboard's shard inspector.

import JobSchema

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

extension TensorShard {
  /// The 16 GPT-2 parameter tensors in llm.c checkpoint order, split over `tp` ranks.
  public static func gpt2Layout(_ c: GPTConfig, tp t: Int) -> [TensorShard] {
    let (L, C, H, Vp, T) = (c.numLayers, c.channels, c.numHeads, c.paddedVocabSize, c.maxSeqLen)
    let hl = H / t, cl = C / t, fl = 4 * C / t, vl = Vp / t
    func replicated(_ name: String, _ shape: [Int]) -> TensorShard {
      TensorShard(name: name, shape: shape, split: .replicated, splitDim: nil,
                  ranks: Array(repeating: [], count: t),
                  rankDescriptions: Array(repeating: "all (replicated)", count: t))
    }
    func heads(_ r: Int) -> String { hl == 1 ? "head \(r * hl) of \(H)" : "heads \(r * hl)–\((r + 1) * hl - 1) of \(H)" }
    let qkvRanks = (0..<t).map { r in (0..<3).map { b in SliceRange(b * C + r * cl, b * C + (r + 1) * cl) } }
    let qkvDesc = (0..<t).map { r in "\(heads(r)): q/k/v rows \(r * cl)–\((r + 1) * cl - 1) of each \(C)" }
    let colC = (0..<t).map { [SliceRange($0 * cl, ($0 + 1) * cl)] }
    let colF = (0..<t).map { [SliceRange($0 * fl, ($0 + 1) * fl)] }
    let vocab = (0..<t).map { [SliceRange($0 * vl, ($0 + 1) * vl)] }
    let rowDesc = (0..<t).map { "\(heads($0)): input cols \($0 * cl)–\(($0 + 1) * cl - 1) of \(C)" }
    return [
      TensorShard(name: "wte", shape: [Vp, C], split: .vocab, splitDim: 0, ranks: vocab,
                  rankDescriptions: (0..<t).map { "vocab rows \($0 * vl)–\(($0 + 1) * vl - 1) of \(Vp)" }),
      replicated("wpe", [T, C]),
      replicated("ln1w", [L, C]),
      replicated("ln1b", [L, C]),
      TensorShard(name: "qkvw", shape: [L, 3 * C, C], split: .column, splitDim: 1, ranks: qkvRanks, rankDescriptions: qkvDesc),
      TensorShard(name: "qkvb", shape: [L, 3 * C], split: .column, splitDim: 1, ranks: qkvRanks, rankDescriptions: qkvDesc),
      TensorShard(name: "attprojw", shape: [L, C, C], split: .row, splitDim: 2, ranks: colC, rankDescriptions: rowDesc),
      replicated("attprojb", [L, C]),
      replicated("ln2w", [L, C]),
      replicated("ln2b", [L, C]),
      TensorShard(name: "fcw", shape: [L, 4 * C, C], split: .column, splitDim: 1, ranks: colF,
                  rankDescriptions: (0..<t).map { "rows \($0 * fl)–\(($0 + 1) * fl - 1) of \(4 * C)" }),
      TensorShard(name: "fcb", shape: [L, 4 * C], split: .column, splitDim: 1, ranks: colF,
                  rankDescriptions: (0..<t).map { "rows \($0 * fl)–\(($0 + 1) * fl - 1) of \(4 * C)" }),
      TensorShard(name: "fcprojw", shape: [L, C, 4 * C], split: .row, splitDim: 2, ranks: colF,
                  rankDescriptions: (0..<t).map { "input cols \($0 * fl)–\(($0 + 1) * fl - 1) of \(4 * C)" }),
      replicated("fcprojb", [L, C]),
      replicated("lnfw", [C]),
      replicated("lnfb", [C]),
    ]
  }

  /// Visits this rank's slices in local storage order: `body(globalOffset, localOffset, count)`
  /// in elements, relative to the tensor's start.
  public func forEachLocalRun(rank r: Int, _ body: (Int, Int, Int) throws -> Void) rethrows {
    guard let d = splitDim else {
      try body(0, 0, globalCount)
      return
    }
    let outer = shape[..<d].reduce(1, *)
    let inner = shape[(d + 1)...].reduce(1, *)
    var local = 0
    for o in 0..<outer {
      for range in ranks[r] {
        let g = (o * shape[d] + range.start) * inner
        let n = range.count * inner
        try body(g, local, n)
        local += n
      }
    }
  }
}

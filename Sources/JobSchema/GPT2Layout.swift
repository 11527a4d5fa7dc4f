// The one description of how GPT-2's parameter tensors are split over t tensor-parallel ranks
// (Megatron's column-, row- and vocab-parallel splits, llm.c's tensor order). The engine lays
// its parameters, checkpoints and gradient buckets out from it, the telemetry segment publishes
// it for the shard inspector, and the synthetic jobs of the tests and the demo use it as it is.

/// llm.c's 16 parameter tensors, in checkpoint order (the raw value is the index).
public enum GPT2Tensor: Int, Sendable, CaseIterable {
  case wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb

  /// The name llm.c and the segment use ("qkvw").
  public var name: String { String(describing: self) }
  /// Stacked per layer (first dimension L).
  public var perLayer: Bool { rawValue >= GPT2Tensor.ln1w.rawValue && rawValue <= GPT2Tensor.fcprojb.rawValue }
}

extension ShardedTensor {
  /// GPT-2's parameter tensors in llm.c order, split over `tp` ranks: L layers, H heads, C
  /// channels, a vocabulary padded to `paddedVocab` rows, `maxSeq` positions.
  public static func gpt2Layout(layers L: Int, heads H: Int, channels C: Int, paddedVocab Vp: Int, maxSeq T: Int,
                                tp t: Int) -> [ShardedTensor] {
    let hl = H / t, cl = C / t, fl = 4 * C / t, vl = Vp / t
    func heads(_ r: Int) -> String { hl == 1 ? "head \(r * hl) of \(H)" : "heads \(r * hl)–\((r + 1) * hl - 1) of \(H)" }
    let qkvRanks = (0..<t).map { r in (0..<3).map { b in (b * C + r * cl)..<(b * C + (r + 1) * cl) } }
    let qkvDesc = (0..<t).map { r in "\(heads(r)): q/k/v rows \(r * cl)–\((r + 1) * cl - 1) of each \(C)" }
    let colC = (0..<t).map { [($0 * cl)..<(($0 + 1) * cl)] }
    let colF = (0..<t).map { [($0 * fl)..<(($0 + 1) * fl)] }
    let vocab = (0..<t).map { [($0 * vl)..<(($0 + 1) * vl)] }
    let rowDesc = (0..<t).map { "\(heads($0)): input cols \($0 * cl)–\(($0 + 1) * cl - 1) of \(C)" }
    let hidden = (0..<t).map { "rows \($0 * fl)–\(($0 + 1) * fl - 1) of \(4 * C)" }
    func tensor(_ which: GPT2Tensor, _ shape: [Int]) -> ShardedTensor {
      switch which {
      case .wte:
        return ShardedTensor(name: which.name, shape: shape, split: .vocab, splitDim: 0, ranks: vocab,
                             rankDescriptions: (0..<t).map { "vocab rows \($0 * vl)–\(($0 + 1) * vl - 1) of \(Vp)" })
      case .qkvw, .qkvb:
        return ShardedTensor(name: which.name, shape: shape, split: .column, splitDim: 1, ranks: qkvRanks, rankDescriptions: qkvDesc)
      case .attprojw:
        return ShardedTensor(name: which.name, shape: shape, split: .row, splitDim: 2, ranks: colC, rankDescriptions: rowDesc)
      case .fcw, .fcb:
        return ShardedTensor(name: which.name, shape: shape, split: .column, splitDim: 1, ranks: colF, rankDescriptions: hidden)
      case .fcprojw:
        return ShardedTensor(name: which.name, shape: shape, split: .row, splitDim: 2, ranks: colF,
                             rankDescriptions: (0..<t).map { "input cols \($0 * fl)–\(($0 + 1) * fl - 1) of \(4 * C)" })
      case .wpe, .ln1w, .ln1b, .attprojb, .ln2w, .ln2b, .fcprojb, .lnfw, .lnfb:
        return ShardedTensor(name: which.name, shape: shape, split: .replicated, splitDim: nil,
                             ranks: Array(repeating: [], count: t),
                             rankDescriptions: Array(repeating: "all (replicated)", count: t))
      }
    }
    let shapes: [GPT2Tensor: [Int]] = [
      .wte: [Vp, C], .wpe: [T, C], .ln1w: [L, C], .ln1b: [L, C], .qkvw: [L, 3 * C, C], .qkvb: [L, 3 * C],
      .attprojw: [L, C, C], .attprojb: [L, C], .ln2w: [L, C], .ln2b: [L, C], .fcw: [L, 4 * C, C], .fcb: [L, 4 * C],
      .fcprojw: [L, C, 4 * C], .fcprojb: [L, C], .lnfw: [C], .lnfb: [C],
    ]
    return GPT2Tensor.allCases.map { tensor($0, shapes[$0]!) }
  }

  /// The layout of a model of `shape` (its batch and sequence do not matter).
  public static func gpt2Layout(_ shape: ModelShape, tp: Int) -> [ShardedTensor] {
    gpt2Layout(layers: shape.layers, heads: shape.heads, channels: shape.channels, paddedVocab: shape.paddedVocab,
               maxSeq: shape.maxSeq, tp: tp)
  }

  /// Visits TP rank `r`'s slices in its local storage order: `body(globalOffset, localOffset,
  /// count)` in elements, relative to the tensor's start.
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
        let g = (o * shape[d] + range.lowerBound) * inner
        let n = range.count * inner
        try body(g, local, n)
        local += n
      }
    }
  }
}

// Token and position embeddings. The token embedding is vocab-parallel: each rank looks up the
// rows of its own vocabulary range and the engine all-reduces the (B,T,C) result.

/// Token embedding, vocab-parallel part: out (N,C) row i = wte[tokens[i] − vocabStart] when that
/// id is one of this rank's `vocabLocal` rows, zero otherwise. `wte` is (vocabLocal, C); N = B·T.
/// The caller all-reduces over TP and then adds the position embedding.
@inline(never)
public func embeddingForward(_ out: FloatPtr, _ tokens: UnsafePointer<Int32>, _ wte: FloatPtr,
                             _ N: Int, _ C: Int, _ vocabStart: Int, _ vocabLocal: Int,
                             pool: WorkerPool = .serial) {
  struct Rows: IndexJob {
    let out: FloatPtr, tokens: UnsafePointer<Int32>, wte: FloatPtr, C: Int, vocabStart: Int, vocabLocal: Int
    func run(_ i: Int) { embeddingRow(out + i * C, Int(tokens[i]) - vocabStart, wte, C, vocabLocal) }
  }
  pool.forEach(N, Rows(out: out, tokens: tokens, wte: wte, C: C, vocabStart: vocabStart, vocabLocal: vocabLocal))
}

/// One output row: wte row `row` (C floats) when 0 ≤ row < vocabLocal, zeros otherwise.
@inline(__always)
func embeddingRow(_ out: FloatPtr, _ row: Int, _ wte: FloatPtr, _ C: Int, _ vocabLocal: Int) {
  if row >= 0 && row < vocabLocal {
    out.update(from: wte + row * C, count: C)
  } else {
    out.update(repeating: 0, count: C)
  }
}

/// dwte (vocabLocal, C) += scatter of the dout (N,C) rows whose token this rank owns: adds to
/// the LM head's gradient of the tied embedding. Split by columns, because two positions with
/// the same token add to the same row.
@inline(never)
public func embeddingBackward(_ dwte: FloatPtr, _ dout: FloatPtr, _ tokens: UnsafePointer<Int32>,
                              _ N: Int, _ C: Int, _ vocabStart: Int, _ vocabLocal: Int,
                              pool: WorkerPool = .serial) {
  struct Columns: RangeJob {
    let dwte: FloatPtr, dout: FloatPtr, tokens: UnsafePointer<Int32>, N: Int, C: Int, vocabStart: Int, vocabLocal: Int
    func run(_: Int, _ cols: Range<Int>) {
      for i in 0..<N {
        let row = Int(tokens[i]) - vocabStart
        if row >= 0 && row < vocabLocal { addColumns(dwte + row * C, dout + i * C, cols) }
      }
    }
  }
  pool.forEachClaimed(C, align: 16, Columns(dwte: dwte, dout: dout, tokens: tokens, N: N, C: C,
                                          vocabStart: vocabStart, vocabLocal: vocabLocal))
}

/// Position embedding: out (B,T,C) += wpe[t] for every batch row b; wpe is (maxT, C), T ≤ maxT.
@inline(never)
public func positionForward(_ out: FloatPtr, _ wpe: FloatPtr, _ B: Int, _ T: Int, _ C: Int,
                            pool: WorkerPool = .serial) {
  positionRowsForward(out, wpe, 0, B * T, T, C, pool: pool)
}

/// Position embedding of N consecutive rows of the flattened (B·T, C) activations starting at
/// row `firstRow` (a sequence-parallel slice): out (N,C) row i += wpe[(firstRow + i) % T].
@inline(never)
public func positionRowsForward(_ out: FloatPtr, _ wpe: FloatPtr, _ firstRow: Int, _ N: Int, _ T: Int, _ C: Int,
                                pool: WorkerPool = .serial) {
  struct Rows: IndexJob {
    let out: FloatPtr, wpe: FloatPtr, firstRow: Int, T: Int, C: Int
    func run(_ i: Int) { addColumns(out + i * C, wpe + ((firstRow + i) % T) * C, 0..<C) }
  }
  pool.forEach(N, Rows(out: out, wpe: wpe, firstRow: firstRow, T: T, C: C))
}

/// dwpe[0..<T] (T,C) = Σ over the N rows of dout (N,C) starting at flattened row `firstRow`
/// (a sequence-parallel slice) of row i into position (firstRow + i) % T; positions the slice
/// does not reach get zero (the TP all-reduce adds the other ranks' rows). Split by columns,
/// because rows of different sequences add to the same position.
@inline(never)
public func positionRowsBackward(_ dwpe: FloatPtr, _ dout: FloatPtr, _ firstRow: Int, _ N: Int, _ T: Int, _ C: Int,
                                 pool: WorkerPool = .serial) {
  struct Columns: RangeJob {
    let dwpe: FloatPtr, dout: FloatPtr, firstRow: Int, N: Int, T: Int, C: Int
    func run(_: Int, _ cols: Range<Int>) {
      for t in 0..<T { (dwpe + t * C + cols.lowerBound).update(repeating: 0, count: cols.count) }
      for i in 0..<N { addColumns(dwpe + ((firstRow + i) % T) * C, dout + i * C, cols) }
    }
  }
  pool.forEachClaimed(C, align: 16, Columns(dwpe: dwpe, dout: dout, firstRow: firstRow, N: N, T: T, C: C))
}

/// dwpe[0..<T] (T,C) = Σ_b dout[b, t] over dout (B,T,C); rows ≥ T of dwpe are left alone (this
/// step did not use them).
@inline(never)
public func positionBackward(_ dwpe: FloatPtr, _ dout: FloatPtr, _ B: Int, _ T: Int, _ C: Int,
                             pool: WorkerPool = .serial) {
  struct Positions: RangeJob {
    let dwpe: FloatPtr, dout: FloatPtr, B: Int, T: Int, C: Int
    func run(_: Int, _ ts: Range<Int>) {
      (dwpe + ts.lowerBound * C).update(from: dout + ts.lowerBound * C, count: ts.count * C)
      for b in 1..<max(1, B) {
        for t in ts { addColumns(dwpe + t * C, dout + (b * T + t) * C, 0..<C) }
      }
    }
  }
  pool.forEachClaimed(T, Positions(dwpe: dwpe, dout: dout, B: B, T: T, C: C))
}

/// out[c] += x[c] for c in `columns`: one row of a sum.
@inline(__always)
func addColumns(_ out: FloatPtr, _ x: FloatPtr, _ columns: Range<Int>) {
  for c in columns { out[c] += x[c] }
}

import Glibc

// Vocab-parallel cross-entropy (Megatron's vocab_parallel_cross_entropy): each rank holds the
// logits of its vocabulary range only; three reductions (row max, Σexp, target logit) give
// every rank the exact loss without any rank holding B·T·V logits.

/// Per-position loss state kept between forward and backward.
public struct CrossEntropyBuffers {
  public var rowMax: FloatPtr  // (BT)
  public var packed: FloatPtr  // (BT, 2): Σexp, target logit
  public var losses: FloatPtr  // (BT)
}

/// Local part 1: the maximum over this rank's real vocabulary entries of each row.
@inline(never)
public func crossEntropyLocalMax(_ rowMax: FloatPtr, _ logits: FloatPtr, _ BT: Int, _ Vl: Int, _ valid: Int,
                                 pool: WorkerPool = .serial) {
  struct Rows: RangeJob {
    let rowMax: FloatPtr, logits: FloatPtr, Vl: Int, valid: Int
    func run(_: Int, _ rows: Range<Int>) {
      for i in rows {
        let l = logits + i * Vl
        var m = -Float.greatestFiniteMagnitude
        for j in 0..<valid where l[j] > m { m = l[j] }
        rowMax[i] = m
      }
    }
  }
  pool.forEachRange(BT, Rows(rowMax: rowMax, logits: logits, Vl: Vl, valid: valid))
}

/// Local part 2: Σexp(l − max) over real entries, and the target logit when this rank owns it.
@inline(never)
public func crossEntropyLocalSums(_ packed: FloatPtr, _ logits: FloatPtr, _ rowMax: FloatPtr,
                                  _ targets: UnsafePointer<Int32>, _ BT: Int, _ Vl: Int, _ valid: Int,
                                  _ vocabStart: Int, pool: WorkerPool = .serial) {
  struct Rows: RangeJob {
    let packed: FloatPtr, logits: FloatPtr, rowMax: FloatPtr, targets: UnsafePointer<Int32>
    let Vl: Int, valid: Int, vocabStart: Int
    func run(_: Int, _ rows: Range<Int>) {
      for i in rows {
        let l = logits + i * Vl
        let m = rowMax[i]
        var s: Float = 0
        for j in 0..<valid { s += fastExp(l[j] - m) }
        let t = Int(targets[i]) - vocabStart
        packed[2 * i] = s
        packed[2 * i + 1] = (t >= 0 && t < valid) ? l[t] : 0
      }
    }
  }
  pool.forEachRange(BT, Rows(packed: packed, logits: logits, rowMax: rowMax, targets: targets, Vl: Vl,
                             valid: valid, vocabStart: vocabStart))
}

/// After the reductions: per-position losses (BT); returns their mean.
@inline(never)
public func crossEntropyFinish(_ losses: FloatPtr, _ rowMax: FloatPtr, _ packed: FloatPtr, _ BT: Int) -> Float {
  var total: Double = 0
  for i in 0..<BT {
    let loss = logf(packed[2 * i]) + rowMax[i] - packed[2 * i + 1]
    losses[i] = loss
    total += Double(loss)
  }
  return Float(total / Double(BT))
}

/// dlogits (in place over logits) = (softmax − onehot) · dloss over real entries; padded
/// entries get zero gradient.
@inline(never)
public func crossEntropyBackward(_ logits: FloatPtr, _ rowMax: FloatPtr, _ packed: FloatPtr,
                                 _ targets: UnsafePointer<Int32>, _ dloss: Float, _ BT: Int, _ Vl: Int,
                                 _ valid: Int, _ vocabStart: Int, pool: WorkerPool = .serial) {
  struct Rows: RangeJob {
    let logits: FloatPtr, rowMax: FloatPtr, packed: FloatPtr, targets: UnsafePointer<Int32>
    let dloss: Float, Vl: Int, valid: Int, vocabStart: Int
    func run(_: Int, _ rows: Range<Int>) {
      for i in rows {
        let l = logits + i * Vl
        let m = rowMax[i]
        let inv = dloss / packed[2 * i]
        for j in 0..<valid { l[j] = fastExp(l[j] - m) * inv }
        if valid < Vl { (l + valid).update(repeating: 0, count: Vl - valid) }
        let t = Int(targets[i]) - vocabStart
        if t >= 0 && t < valid { l[t] -= dloss }
      }
    }
  }
  pool.forEachRange(BT, Rows(logits: logits, rowMax: rowMax, packed: packed, targets: targets, dloss: dloss,
                             Vl: Vl, valid: valid, vocabStart: vocabStart))
}

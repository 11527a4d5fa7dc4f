import Glibc

// Vocab-parallel cross-entropy (Megatron's vocab_parallel_cross_entropy): each rank holds the
// logits of its vocabulary range only; three reductions (row max, Σexp, target logit) give
// every rank the exact loss without any rank holding B·T·V logits.

/// Local part 1: rowMax (N) = the maximum of each logits (N,Vl) row over its first `valid`
/// entries (this rank's real vocabulary entries; the rest is padding).
@inline(never)
public func crossEntropyLocalMax(_ rowMax: FloatPtr, _ logits: FloatPtr, _ N: Int, _ Vl: Int, _ valid: Int,
                                 pool: WorkerPool = .serial) {
  struct Rows: RangeJob {
    let rowMax: FloatPtr, logits: FloatPtr, Vl: Int, valid: Int
    func run(_: Int, _ rows: Range<Int>) {
      for i in rows { rowMax[i] = maximum(logits + i * Vl, valid) }
    }
  }
  pool.forEachRange(N, Rows(rowMax: rowMax, logits: logits, Vl: Vl, valid: valid))
}

/// The largest of x[0..<n] (−greatestFiniteMagnitude for n = 0).
@inline(__always)
func maximum(_ x: FloatPtr, _ n: Int) -> Float {
  var m = -Float.greatestFiniteMagnitude
  for j in 0..<n where x[j] > m { m = x[j] }
  return m
}

/// Local part 2: per row of logits (N,Vl), packed (N,2) = (Σexp(l − rowMax) over the first
/// `valid` entries, the target logit if this rank's vocabulary [vocabStart, vocabStart + valid)
/// holds the target, else 0). rowMax (N) is the global row maximum; targets (N) token ids.
@inline(never)
public func crossEntropyLocalSums(_ packed: FloatPtr, _ logits: FloatPtr, _ rowMax: FloatPtr,
                                  _ targets: UnsafePointer<Int32>, _ N: Int, _ Vl: Int, _ valid: Int,
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
  pool.forEachRange(N, Rows(packed: packed, logits: logits, rowMax: rowMax, targets: targets, Vl: Vl,
                             valid: valid, vocabStart: vocabStart))
}

/// After the reductions of rowMax (N) and packed (N,2) over the TP group: losses (N) =
/// log Σexp + max − target logit per position, in nats; returns their mean.
@inline(never)
public func crossEntropyFinish(_ losses: FloatPtr, _ rowMax: FloatPtr, _ packed: FloatPtr, _ N: Int) -> Float {
  var total: Double = 0
  for i in 0..<N {
    let loss = logf(packed[2 * i]) + rowMax[i] - packed[2 * i + 1]
    losses[i] = loss
    total += Double(loss)
  }
  return Float(total / Double(N))
}

/// dlogits (in place over logits (N,Vl)) = (softmax − onehot(target)) · dloss over the first
/// `valid` entries, from the reduced rowMax (N) and packed (N,2); padded entries get zero
/// gradient. dloss is ∂loss/∂(each position's loss), 1/N for a mean.
@inline(never)
public func crossEntropyBackward(_ logits: FloatPtr, _ rowMax: FloatPtr, _ packed: FloatPtr,
                                 _ targets: UnsafePointer<Int32>, _ dloss: Float, _ N: Int, _ Vl: Int,
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
  pool.forEachRange(N, Rows(logits: logits, rowMax: rowMax, packed: packed, targets: targets, dloss: dloss,
                             Vl: Vl, valid: valid, vocabStart: vocabStart))
}

import Glibc

// Vocab-parallel cross-entropy (Megatron's vocab_parallel_cross_entropy): each rank holds the
// logits of its vocabulary range only; three reductions (row max, Σexp, target logit) give
// every rank the exact loss without any rank holding B·T·V logits.

/// Local part 1: rowMax (N) = the maximum of each logits (N,Vl) row over its first `valid`
/// entries (this rank's real vocabulary entries; the rest is padding).
@inline(never)
public func crossEntropyLocalMax(_ rowMax: FloatPtr, _ logits: FloatPtr, _ N: Int, _ Vl: Int, _ valid: Int,
                                 pool: WorkerPool = .serial) {
  struct Rows: IndexJob {
    let rowMax: FloatPtr, logits: FloatPtr, Vl: Int, valid: Int
    func run(_ i: Int) { rowMax[i] = maximum(logits + i * Vl, valid) }
  }
  pool.forEach(N, Rows(rowMax: rowMax, logits: logits, Vl: Vl, valid: valid))
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
  struct Rows: IndexJob {
    let packed: FloatPtr, logits: FloatPtr, rowMax: FloatPtr, targets: UnsafePointer<Int32>
    let Vl: Int, valid: Int, vocabStart: Int
    func run(_ i: Int) {
      crossEntropyLocalSumsRow(packed + 2 * i, logits + i * Vl, rowMax[i], Int(targets[i]) - vocabStart, valid)
    }
  }
  pool.forEach(N, Rows(packed: packed, logits: logits, rowMax: rowMax, targets: targets, Vl: Vl,
                       valid: valid, vocabStart: vocabStart))
}

/// One row: packed (2) = (Σ exp(l[j] − m) over j < valid, l[target] if 0 ≤ target < valid else 0).
@inline(__always)
func crossEntropyLocalSumsRow(_ packed: FloatPtr, _ l: FloatPtr, _ m: Float, _ target: Int, _ valid: Int) {
  var s: Float = 0
  for j in 0..<valid { s += fastExp(l[j] - m) }
  packed[0] = s
  packed[1] = (target >= 0 && target < valid) ? l[target] : 0
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
  struct Rows: IndexJob {
    let logits: FloatPtr, rowMax: FloatPtr, packed: FloatPtr, targets: UnsafePointer<Int32>
    let dloss: Float, Vl: Int, valid: Int, vocabStart: Int
    func run(_ i: Int) {
      crossEntropyBackwardRow(logits + i * Vl, rowMax[i], packed[2 * i], Int(targets[i]) - vocabStart, dloss,
                              Vl, valid)
    }
  }
  pool.forEach(N, Rows(logits: logits, rowMax: rowMax, packed: packed, targets: targets, dloss: dloss,
                       Vl: Vl, valid: valid, vocabStart: vocabStart))
}

/// One row of Vl logits, in place: l[j] = exp(l[j] − m) / sumExp · dloss for j < valid, minus
/// dloss at the target (when 0 ≤ target < valid); zero past `valid`.
@inline(__always)
func crossEntropyBackwardRow(_ l: FloatPtr, _ m: Float, _ sumExp: Float, _ target: Int, _ dloss: Float,
                             _ Vl: Int, _ valid: Int) {
  let inv = dloss / sumExp
  for j in 0..<valid { l[j] = fastExp(l[j] - m) * inv }
  if valid < Vl { (l + valid).update(repeating: 0, count: Vl - valid) }
  if target >= 0 && target < valid { l[target] -= dloss }
}

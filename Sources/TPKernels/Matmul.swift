// Linear layers: one sgemm each, plus the bias column sums.

/// out (N,OC) = inp (N,IC) · weight (OC,IC)ᵀ + bias (OC, optional). The pool copies the bias
/// rows and splits the product (`pooledSgemm`).
@inline(never)
public func matmulForward(_ out: FloatPtr, _ inp: FloatPtr, _ weight: FloatPtr, _ bias: FloatPtr?,
                          _ N: Int, _ IC: Int, _ OC: Int, pool: WorkerPool = .serial) {
  struct BiasRows: IndexJob {
    let out: FloatPtr, bias: FloatPtr, OC: Int
    func run(_ i: Int) { (out + i * OC).update(from: bias, count: OC) }
  }
  if let bias { pool.forEach(N, BiasRows(out: out, bias: bias, OC: OC)) }
  pooledSgemm(pool: pool, transA: false, transB: true, m: N, n: OC, k: IC, a: inp, lda: IC, b: weight, ldb: IC,
              beta: bias == nil ? 0 : 1, c: out, ldc: OC)
}

/// dinp (N,IC) = dout (N,OC) · weight (OC,IC) (overwritten unless `accumulateInput`);
/// dweight (OC,IC) = doutᵀ · inp (N,IC), overwritten; dbias (OC) = Σ rows of dout (pass nil when
/// another kernel produces it).
@inline(never)
public func matmulBackward(_ dinp: FloatPtr, _ dweight: FloatPtr, _ dbias: FloatPtr?, _ dout: FloatPtr,
                           _ inp: FloatPtr, _ weight: FloatPtr, _ N: Int, _ IC: Int, _ OC: Int,
                           accumulateInput: Bool = false, pool: WorkerPool = .serial) {
  pooledSgemm(pool: pool, transA: false, transB: false, m: N, n: IC, k: OC, a: dout, lda: OC, b: weight, ldb: IC,
              beta: accumulateInput ? 1 : 0, c: dinp, ldc: IC)
  pooledSgemm(pool: pool, transA: true, transB: false, m: OC, n: IC, k: N, a: dout, lda: OC, b: inp, ldb: IC,
              beta: 0, c: dweight, ldc: IC)
  if let dbias { biasBackward(dbias, dout, N, OC, pool: pool) }
}

/// dinp (N,IC) = dout (N,OC) · weight (OC,IC), overwritten: `matmulBackward`'s input gradient
/// alone, for a caller that runs it a block of rows at a time (each row is computed as in the
/// whole product).
@inline(never)
public func matmulBackwardInput(_ dinp: FloatPtr, _ dout: FloatPtr, _ weight: FloatPtr, _ N: Int, _ IC: Int, _ OC: Int,
                                pool: WorkerPool = .serial) {
  pooledSgemm(pool: pool, transA: false, transB: false, m: N, n: IC, k: OC, a: dout, lda: OC, b: weight, ldb: IC,
              beta: 0, c: dinp, ldc: IC)
}

/// Rows `features` of dweight (OC,IC) = doutᵀ (OC,N) · inp (N,IC), overwritten: `matmulBackward`'s
/// weight gradient for a block of output features (each element is the same sum over the N
/// rows as in the whole product).
@inline(never)
public func matmulBackwardWeight(_ dweight: FloatPtr, _ dout: FloatPtr, _ inp: FloatPtr, _ N: Int, _ IC: Int, _ OC: Int,
                                 features: Range<Int>, pool: WorkerPool = .serial) {
  if features.isEmpty { return }
  pooledSgemm(pool: pool, transA: true, transB: false, m: features.count, n: IC, k: N, a: dout + features.lowerBound,
              lda: OC, b: inp, ldb: IC, beta: 0, c: dweight + features.lowerBound * IC, ldc: IC)
}

/// dbias (OC) = column sums of dout (N,OC).
@inline(never)
public func biasBackward(_ dbias: FloatPtr, _ dout: FloatPtr, _ N: Int, _ OC: Int, pool: WorkerPool = .serial) {
  struct Columns: RangeJob {
    let dbias: FloatPtr, dout: FloatPtr, N: Int, OC: Int
    func run(_: Int, _ cols: Range<Int>) {
      (dbias + cols.lowerBound).update(repeating: 0, count: cols.count)
      for i in 0..<N {
        let g = dout + i * OC
        for o in cols { dbias[o] += g[o] }
      }
    }
  }
  pool.forEachClaimed(OC, align: 16, Columns(dbias: dbias, dout: dout, N: N, OC: OC))
}

/// out (N,C) += bias (C).

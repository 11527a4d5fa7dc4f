// Layer kernels as forward/backward pairs, llm.c style: outputs first, then inputs, then
// weights, shape ints last. Backward functions *overwrite* their parameter gradients (every
// parameter has exactly one producer per step, so the step needs no gradient memset); the
// exception is `embeddingBackward`, which adds to the LM head's gradient of the tied `wte`.
// Input gradients are overwritten or accumulated as each function says. Matrix products go
// through one `cblas_sgemm` each. A kernel given a `pool` splits its rows, columns or heads over
// the pool's threads (the default runs it on the calling thread alone); every element comes out
// as it would alone, except column sums split by rows, which are added up from per-thread parts.

import CBLAS
import Glibc

public typealias FloatPtr = UnsafeMutablePointer<Float>

// MARK: - sgemm

/// Row-major C = alpha · op(A) · op(B) + beta · C with explicit leading dimensions.
@inline(__always)
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: FloatPtr, ldc: Int) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
}

/// Sets the OpenBLAS thread count for this process.
public func setBLASThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

// MARK: - encoder (token + position embedding; vocab-parallel part)

/// out (B,T,C) = wte[tok - vocabStart] for tokens in [vocabStart, vocabStart + vocabLocal),
/// zero otherwise. The caller all-reduces over TP and then adds the position embedding.
@inline(never)
public func embeddingForward(_ out: FloatPtr, _ tokens: UnsafePointer<Int32>, _ wte: FloatPtr,
                             _ BT: Int, _ C: Int, _ vocabStart: Int, _ vocabLocal: Int,
                             pool: WorkerPool = .serial) {
  struct Rows: RangeJob {
    let out: FloatPtr, tokens: UnsafePointer<Int32>, wte: FloatPtr, C: Int, vocabStart: Int, vocabLocal: Int
    func run(_: Int, _ rows: Range<Int>) {
      for i in rows {
        let row = Int(tokens[i]) - vocabStart
        let o = out + i * C
        if row >= 0 && row < vocabLocal {
          o.update(from: wte + row * C, count: C)
        } else {
          o.update(repeating: 0, count: C)
        }
      }
    }
  }
  pool.forEachRange(BT, Rows(out: out, tokens: tokens, wte: wte, C: C, vocabStart: vocabStart, vocabLocal: vocabLocal))
}

/// dwte += scatter of dout rows (adds to the LM head's gradient of the tied embedding).
@inline(never)
public func embeddingBackward(_ dwte: FloatPtr, _ dout: FloatPtr, _ tokens: UnsafePointer<Int32>,
                              _ BT: Int, _ C: Int, _ vocabStart: Int, _ vocabLocal: Int,
                              pool: WorkerPool = .serial) {
  // split by columns: two positions with the same token add to the same row
  struct Columns: RangeJob {
    let dwte: FloatPtr, dout: FloatPtr, tokens: UnsafePointer<Int32>, BT: Int, C: Int, vocabStart: Int, vocabLocal: Int
    func run(_: Int, _ cols: Range<Int>) {
      for i in 0..<BT {
        let row = Int(tokens[i]) - vocabStart
        if row >= 0 && row < vocabLocal {
          let d = dwte + row * C
          let g = dout + i * C
          for c in cols { d[c] += g[c] }
        }
      }
    }
  }
  pool.forEachRange(C, align: 16, Columns(dwte: dwte, dout: dout, tokens: tokens, BT: BT, C: C,
                                          vocabStart: vocabStart, vocabLocal: vocabLocal))
}

/// out (B,T,C) += wpe[t].
@inline(never)
public func positionForward(_ out: FloatPtr, _ wpe: FloatPtr, _ B: Int, _ T: Int, _ C: Int,
                            pool: WorkerPool = .serial) {
  struct Rows: RangeJob {
    let out: FloatPtr, wpe: FloatPtr, T: Int, C: Int
    func run(_: Int, _ rows: Range<Int>) {
      for i in rows {
        let o = out + i * C
        let p = wpe + (i % T) * C
        for c in 0..<C { o[c] += p[c] }
      }
    }
  }
  pool.forEachRange(B * T, Rows(out: out, wpe: wpe, T: T, C: C))
}

/// dwpe[0..<T] = Σ_b dout[b, t] (rows ≥ T are left alone: this step did not use them).
@inline(never)
public func positionBackward(_ dwpe: FloatPtr, _ dout: FloatPtr, _ B: Int, _ T: Int, _ C: Int,
                             pool: WorkerPool = .serial) {
  struct Positions: RangeJob {
    let dwpe: FloatPtr, dout: FloatPtr, B: Int, T: Int, C: Int
    func run(_: Int, _ ts: Range<Int>) {
      (dwpe + ts.lowerBound * C).update(from: dout + ts.lowerBound * C, count: ts.count * C)
      for b in 1..<max(1, B) {
        for t in ts {
          let g = dout + (b * T + t) * C
          let d = dwpe + t * C
          for c in 0..<C { d[c] += g[c] }
        }
      }
    }
  }
  pool.forEachRange(T, Positions(dwpe: dwpe, dout: dout, B: B, T: T, C: C))
}

// MARK: - LayerNorm

/// Σ x[c] and Σ x[c]·y[c] over C with 8 independent partial sums (Swift does not reassociate
/// float additions, so a single accumulator would serialise on the add latency).
@inline(__always)
func sum8(_ x: FloatPtr, _ C: Int) -> Float {
  var acc = SIMD8<Float>()
  var c = 0
  while c + 8 <= C {
    acc += UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self)
    c += 8
  }
  var s = acc.sum()
  while c < C { s += x[c]; c += 1 }
  return s
}

/// out (N,C) = (inp - mean) * rstd * weight + bias; records mean and rstd (N) for backward.
@inline(never)
public func layernormForward(_ out: FloatPtr, _ mean: FloatPtr, _ rstd: FloatPtr, _ inp: FloatPtr,
                             _ weight: FloatPtr, _ bias: FloatPtr, _ N: Int, _ C: Int,
                             pool: WorkerPool = .serial) {
  struct Rows: RangeJob {
    let out: FloatPtr, mean: FloatPtr, rstd: FloatPtr, inp: FloatPtr, weight: FloatPtr, bias: FloatPtr, C: Int
    func run(_: Int, _ rows: Range<Int>) {
      for i in rows { layernormRow(out + i * C, &mean[i], &rstd[i], inp + i * C, weight, bias, C) }
    }
  }
  pool.forEachRange(N, Rows(out: out, mean: mean, rstd: rstd, inp: inp, weight: weight, bias: bias, C: C))
}

/// One row of LayerNorm (eps 1e-5).
@inline(__always)
func layernormRow(_ o: FloatPtr, _ mean: inout Float, _ rstd: inout Float, _ x: FloatPtr,
                  _ weight: FloatPtr, _ bias: FloatPtr, _ C: Int) {
  let eps: Float = 1e-5
  let m = sum8(x, C) / Float(C)
  var acc = SIMD8<Float>()
  var c = 0
  while c + 8 <= C {
    let d = UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self) - m
    acc += d * d
    c += 8
  }
  var v = acc.sum()
  while c < C { let d = x[c] - m; v += d * d; c += 1 }
  v /= Float(C)
  let s = 1 / (v + eps).squareRoot()
  for c in 0..<C { o[c] = (x[c] - m) * s * weight[c] + bias[c] }
  mean = m
  rstd = s
}

/// The end of a row-parallel block and the next LayerNorm in one sweep:
/// residualOut (N,C) = residualIn + proj + projBias, then out = LayerNorm(residualOut)
/// (records mean and rstd). Each row is finished while it is still in L1.
@inline(never)
public func residualLayernormForward(_ residualOut: FloatPtr, _ out: FloatPtr, _ mean: FloatPtr,
                                     _ rstd: FloatPtr, _ residualIn: FloatPtr, _ proj: FloatPtr,
                                     _ projBias: FloatPtr, _ weight: FloatPtr, _ bias: FloatPtr,
                                     _ N: Int, _ C: Int, pool: WorkerPool = .serial) {
  struct Rows: RangeJob {
    let residualOut: FloatPtr, out: FloatPtr, mean: FloatPtr, rstd: FloatPtr, residualIn: FloatPtr
    let proj: FloatPtr, projBias: FloatPtr, weight: FloatPtr, bias: FloatPtr, C: Int
    func run(_: Int, _ rows: Range<Int>) {
      for i in rows {
        let r = residualOut + i * C
        let a = residualIn + i * C
        let p = proj + i * C
        for c in 0..<C { r[c] = a[c] + (p[c] + projBias[c]) }
        layernormRow(out + i * C, &mean[i], &rstd[i], r, weight, bias, C)
      }
    }
  }
  pool.forEachRange(N, Rows(residualOut: residualOut, out: out, mean: mean, rstd: rstd, residualIn: residualIn,
                            proj: proj, projBias: projBias, weight: weight, bias: bias, C: C))
}

/// dinp += ∂loss/∂inp (or = with `accumulateInput: false`); dweight, dbias are overwritten.
/// `dinpColumnSums` (C), when given, receives Σ over rows of the final dinp: the gradient of a
/// bias that was added to this LayerNorm's input (a row-parallel block's bias), without another
/// sweep over dinp.
@inline(never)
public func layernormBackward(_ dinp: FloatPtr, _ dweight: FloatPtr, _ dbias: FloatPtr, _ dout: FloatPtr,
                              _ inp: FloatPtr, _ weight: FloatPtr, _ mean: FloatPtr, _ rstd: FloatPtr,
                              _ N: Int, _ C: Int, accumulateInput: Bool = true,
                              dinpColumnSums: FloatPtr? = nil, pool: WorkerPool = .serial) {
  // rows split over the pool; thread 0 sums its rows' columns into the outputs, the others into
  // their scratch (3·C floats each), added in afterwards
  precondition(pool.width == 1 || pool.scratchFloats >= 3 * C, "pool scratch too small for LayerNorm backward")
  struct Rows: RangeJob {
    let dinp: FloatPtr, dweight: FloatPtr, dbias: FloatPtr, dout: FloatPtr, inp: FloatPtr, weight: FloatPtr
    let mean: FloatPtr, rstd: FloatPtr, C: Int, accumulateInput: Bool, dinpColumnSums: FloatPtr?, pool: WorkerPool
    func run(_ w: Int, _ rows: Range<Int>) {
      let part = w == 0 ? nil : pool.scratch(w)
      layernormBackwardRows(dinp, part ?? dweight, part.map { $0 + C } ?? dbias, dout, inp, weight, mean, rstd,
                            rows, C, accumulateInput, dinpColumnSums == nil ? nil : part.map { $0 + 2 * C } ?? dinpColumnSums)
    }
  }
  pool.forEachRange(N, Rows(dinp: dinp, dweight: dweight, dbias: dbias, dout: dout, inp: inp, weight: weight,
                            mean: mean, rstd: rstd, C: C, accumulateInput: accumulateInput,
                            dinpColumnSums: dinpColumnSums, pool: pool))
  for w in 1..<pool.width {
    let part = pool.scratch(w)
    for c in 0..<C {
      dweight[c] += part[c]
      dbias[c] += part[C + c]
    }
    if let sums = dinpColumnSums { for c in 0..<C { sums[c] += part[2 * C + c] } }
  }
}

@inline(__always)
func layernormBackwardRows(_ dinp: FloatPtr, _ dweight: FloatPtr, _ dbias: FloatPtr, _ dout: FloatPtr,
                           _ inp: FloatPtr, _ weight: FloatPtr, _ mean: FloatPtr, _ rstd: FloatPtr,
                           _ rows: Range<Int>, _ C: Int, _ accumulateInput: Bool, _ dinpColumnSums: FloatPtr?) {
  dweight.update(repeating: 0, count: C)
  dbias.update(repeating: 0, count: C)
  dinpColumnSums?.update(repeating: 0, count: C)
  for i in rows {
    let g = dout + i * C
    let x = inp + i * C
    let di = dinp + i * C
    let m = mean[i]
    let s = rstd[i]
    var a1 = SIMD8<Float>(), a2 = SIMD8<Float>()
    var c = 0
    while c + 8 <= C {
      let xv = UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self)
      let gv = UnsafeRawPointer(g + c).loadUnaligned(as: SIMD8<Float>.self)
      let wv = UnsafeRawPointer(weight + c).loadUnaligned(as: SIMD8<Float>.self)
      let dnorm = wv * gv
      a1 += dnorm
      a2 += dnorm * ((xv - m) * s)
      c += 8
    }
    var dnormMean = a1.sum()
    var dnormNormMean = a2.sum()
    while c < C {
      let dnorm = weight[c] * g[c]
      dnormMean += dnorm
      dnormNormMean += dnorm * ((x[c] - m) * s)
      c += 1
    }
    dnormMean /= Float(C)
    dnormNormMean /= Float(C)
    // explicit lanes: the outputs alias none of the inputs, but the compiler cannot know that
    let sums = dinpColumnSums
    c = 0
    while c + 8 <= C {
      let xv = UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self)
      let gv = UnsafeRawPointer(g + c).loadUnaligned(as: SIMD8<Float>.self)
      let wv = UnsafeRawPointer(weight + c).loadUnaligned(as: SIMD8<Float>.self)
      let norm = (xv - m) * s
      let db = UnsafeRawPointer(dbias + c).loadUnaligned(as: SIMD8<Float>.self) + gv
      UnsafeMutableRawPointer(dbias + c).storeBytes(of: db, as: SIMD8<Float>.self)
      let dw = UnsafeRawPointer(dweight + c).loadUnaligned(as: SIMD8<Float>.self) + norm * gv
      UnsafeMutableRawPointer(dweight + c).storeBytes(of: dw, as: SIMD8<Float>.self)
      var d = (wv * gv - dnormMean - norm * dnormNormMean) * s
      if accumulateInput { d += UnsafeRawPointer(di + c).loadUnaligned(as: SIMD8<Float>.self) }
      UnsafeMutableRawPointer(di + c).storeBytes(of: d, as: SIMD8<Float>.self)
      if let sums {
        let cs = UnsafeRawPointer(sums + c).loadUnaligned(as: SIMD8<Float>.self) + d
        UnsafeMutableRawPointer(sums + c).storeBytes(of: cs, as: SIMD8<Float>.self)
      }
      c += 8
    }
    while c < C {
      let norm = (x[c] - m) * s
      let dnorm = weight[c] * g[c]
      dbias[c] += g[c]
      dweight[c] += norm * g[c]
      let d = (dnorm - dnormMean - norm * dnormNormMean) * s
      di[c] = accumulateInput ? di[c] + d : d
      sums?[c] += di[c]
      c += 1
    }
  }
}

// MARK: - Linear (one sgemm)

/// out (N,OC) = inp (N,IC) · weight (OC,IC)ᵀ + bias (OC, optional).
@inline(never)
public func matmulForward(_ out: FloatPtr, _ inp: FloatPtr, _ weight: FloatPtr, _ bias: FloatPtr?,
                          _ N: Int, _ IC: Int, _ OC: Int, pool: WorkerPool = .serial) {
  struct BiasRows: RangeJob {
    let out: FloatPtr, bias: FloatPtr, OC: Int
    func run(_: Int, _ rows: Range<Int>) {
      for i in rows { (out + i * OC).update(from: bias, count: OC) }
    }
  }
  if let bias { pool.forEachRange(N, BiasRows(out: out, bias: bias, OC: OC)) }
  sgemm(transA: false, transB: true, m: N, n: OC, k: IC, a: inp, lda: IC, b: weight, ldb: IC,
        beta: bias == nil ? 0 : 1, c: out, ldc: OC)
}

/// dinp (N,IC) = dout · weight (overwritten unless `accumulateInput`); dweight = doutᵀ · inp;
/// dbias = Σ dout (pass nil when another kernel produces it).
@inline(never)
public func matmulBackward(_ dinp: FloatPtr, _ dweight: FloatPtr, _ dbias: FloatPtr?, _ dout: FloatPtr,
                           _ inp: FloatPtr, _ weight: FloatPtr, _ N: Int, _ IC: Int, _ OC: Int,
                           accumulateInput: Bool = false, pool: WorkerPool = .serial) {
  sgemm(transA: false, transB: false, m: N, n: IC, k: OC, a: dout, lda: OC, b: weight, ldb: IC,
        beta: accumulateInput ? 1 : 0, c: dinp, ldc: IC)
  sgemm(transA: true, transB: false, m: OC, n: IC, k: N, a: dout, lda: OC, b: inp, ldb: IC,
        beta: 0, c: dweight, ldc: IC)
  if let dbias { biasBackward(dbias, dout, N, OC, pool: pool) }
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
  pool.forEachRange(OC, align: 16, Columns(dbias: dbias, dout: dout, N: N, OC: OC))
}

/// out (N,C) += bias (C).
@inline(never)
public func biasForward(_ out: FloatPtr, _ bias: FloatPtr, _ N: Int, _ C: Int) {
  for i in 0..<N {
    let o = out + i * C
    for c in 0..<C { o[c] += bias[c] }
  }
}

// MARK: - Attention (heads of this rank)

/// Query/key block of the causal attention: blocks above the diagonal are never computed.
public let attentionBlock = 64

/// Causal self-attention over `NH` heads of size `hs`.
/// - out (B,T,NH·hs); att (B,NH,T,T) post-softmax probabilities, zero above the diagonal;
///   qkv (B,T,3·NH·hs) laid out [q | k | v] per token, each NH·hs wide.
/// Query block [r0, r1) only needs keys [0, r1): a causal step skips about 3/8 of the products.
/// With a pool, the (batch, head) pairs are split over its threads, each running its small
/// GEMMs on one OpenBLAS thread.
@inline(never)
public func attentionForward(_ out: FloatPtr, _ att: FloatPtr, _ qkv: FloatPtr,
                             _ B: Int, _ T: Int, _ NH: Int, _ hs: Int, pool: WorkerPool = .serial) {
  struct Heads: RangeJob {
    let out: FloatPtr, att: FloatPtr, qkv: FloatPtr, T: Int, NH: Int, hs: Int
    func run(_: Int, _ pairs: Range<Int>) {
      let CL = NH * hs
      let scale = 1 / Float(hs).squareRoot()
      for bh in pairs {
        let (q, k, v) = headQKV(qkv, bh, T, NH, hs)
        let a = att + bh * T * T
        let o = headColumns(out, bh, T, NH, hs, rowWidth: CL)
        var r0 = 0
        while r0 < T {
          let r1 = min(T, r0 + attentionBlock)
          // preatt[r0..<r1, 0..<r1] = scale · Q Kᵀ
          sgemm(transA: false, transB: true, m: r1 - r0, n: r1, k: hs, alpha: scale, a: q + r0 * 3 * CL,
                lda: 3 * CL, b: k, ldb: 3 * CL, beta: 0, c: a + r0 * T, ldc: T)
          for t in r0..<r1 { softmaxCausalRow(a + t * T, t + 1, r1) }
          // out[r0..<r1] = att[r0..<r1, 0..<r1] · V[0..<r1]
          sgemm(transA: false, transB: false, m: r1 - r0, n: hs, k: r1, a: a + r0 * T, lda: T, b: v,
                ldb: 3 * CL, beta: 0, c: o + r0 * CL, ldc: CL)
          r0 = r1
        }
      }
    }
  }
  withSingleThreadedBLAS(pool) {
    pool.forEachRange(B * NH, Heads(out: out, att: att, qkv: qkv, T: T, NH: NH, hs: hs))
  }
}

/// Head `bh` = b·NH + h's first column in a (B,T,rowWidth) buffer whose rows start with the NH
/// heads' hs-wide slices side by side.
@inline(__always)
func headColumns(_ buffer: FloatPtr, _ bh: Int, _ T: Int, _ NH: Int, _ hs: Int, rowWidth: Int) -> FloatPtr {
  buffer + (bh / NH) * T * rowWidth + (bh % NH) * hs
}

/// Head `bh`'s query, key and value columns in a (B,T,3·NH·hs) [q | k | v] buffer
/// (row stride 3·NH·hs).
@inline(__always)
func headQKV(_ qkv: FloatPtr, _ bh: Int, _ T: Int, _ NH: Int, _ hs: Int) -> (FloatPtr, FloatPtr, FloatPtr) {
  let CL = NH * hs
  let q = headColumns(qkv, bh, T, NH, hs, rowWidth: 3 * CL)
  return (q, q + CL, q + 2 * CL)
}

/// Runs `body` with OpenBLAS on one thread when the pool has several (each pool thread then
/// runs its own GEMMs), restoring the thread count after.
@inline(__always)
func withSingleThreadedBLAS(_ pool: WorkerPool, _ body: () -> Void) {
  if pool.width == 1 { body(); return }
  let previous = openblas_get_num_threads()
  openblas_set_num_threads(1)
  body()
  openblas_set_num_threads(previous)
}

/// Softmax of row[0..<n] in place; row[n..<end] = 0 (the rest of the diagonal block: the
/// products with V and the backward read it). Entries past the block are never read.
@inline(__always)
func softmaxCausalRow(_ row: FloatPtr, _ n: Int, _ end: Int) {
  // max and sum with partial lanes; the exp pass has no reduction, so it vectorises as is
  // (four scalar lanes: the generic SIMD pointwiseMax is not inlined)
  var (m0, m1, m2, m3) = (-Float.greatestFiniteMagnitude, -Float.greatestFiniteMagnitude,
                          -Float.greatestFiniteMagnitude, -Float.greatestFiniteMagnitude)
  var i = 0
  while i + 4 <= n {
    m0 = max(m0, row[i]); m1 = max(m1, row[i + 1]); m2 = max(m2, row[i + 2]); m3 = max(m3, row[i + 3])
    i += 4
  }
  var mx = max(max(m0, m1), max(m2, m3))
  while i < n { mx = max(mx, row[i]); i += 1 }
  for k in 0..<n { row[k] = fastExp(row[k] - mx) }
  let inv = 1 / sum8(row, n)
  for k in 0..<n { row[k] *= inv }
  if n < end { (row + n).update(repeating: 0, count: end - n) }
}

/// Σ x[i]·y[i] with 8 partial lanes.
@inline(__always)
func dot8(_ x: FloatPtr, _ y: FloatPtr, _ n: Int) -> Float {
  var acc = SIMD8<Float>()
  var i = 0
  while i + 8 <= n {
    acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
    i += 8
  }
  var s = acc.sum()
  while i < n { s += x[i] * y[i]; i += 1 }
  return s
}

/// dqkv (B,T,3·NH·hs) = ∂loss/∂qkv (overwritten). `scratch` holds T·T floats (with a pool,
/// its other threads use their own scratch).
@inline(never)
public func attentionBackward(_ dqkv: FloatPtr, _ scratch: FloatPtr, _ dout: FloatPtr,
                              _ qkv: FloatPtr, _ att: FloatPtr, _ B: Int, _ T: Int, _ NH: Int, _ hs: Int,
                              pool: WorkerPool = .serial) {
  struct Heads: RangeJob {
    let dqkv: FloatPtr, scratch: FloatPtr, dout: FloatPtr, qkv: FloatPtr, att: FloatPtr
    let T: Int, NH: Int, hs: Int, pool: WorkerPool
    func run(_ w: Int, _ pairs: Range<Int>) {
      let CL = NH * hs
      let scale = 1 / Float(hs).squareRoot()
      let scratch = w == 0 ? scratch : pool.scratch(w)
      for bh in pairs {
        let (q, k, v) = headQKV(qkv, bh, T, NH, hs)
        let (dq, dk, dv) = headQKV(dqkv, bh, T, NH, hs)
        let a = att + bh * T * T
        let g = headColumns(dout, bh, T, NH, hs, rowWidth: CL)
        // per query block: datt = dout Vᵀ, softmax backward (dpre in scratch), dQ = scale · dpre K
        var r0 = 0
        while r0 < T {
          let r1 = min(T, r0 + attentionBlock)
          sgemm(transA: false, transB: true, m: r1 - r0, n: r1, k: hs, a: g + r0 * CL, lda: CL, b: v,
                ldb: 3 * CL, beta: 0, c: scratch + r0 * T, ldc: T)
          for t in r0..<r1 {
            let ar = a + t * T
            let dr = scratch + t * T
            let dot = dot8(ar, dr, t + 1)
            for s in 0...t { dr[s] = ar[s] * (dr[s] - dot) }
            if t + 1 < r1 { (dr + t + 1).update(repeating: 0, count: r1 - t - 1) }
          }
          sgemm(transA: false, transB: false, m: r1 - r0, n: hs, k: r1, alpha: scale, a: scratch + r0 * T,
                lda: T, b: k, ldb: 3 * CL, beta: 0, c: dq + r0 * 3 * CL, ldc: 3 * CL)
          r0 = r1
        }
        // per key block [c0, c1): only queries t ≥ c0 attend to it
        //   dV = attᵀ dout ; dK = scale · dpreᵀ Q
        var c0 = 0
        while c0 < T {
          let c1 = min(T, c0 + attentionBlock)
          sgemm(transA: true, transB: false, m: c1 - c0, n: hs, k: T - c0, a: a + c0 * T + c0, lda: T,
                b: g + c0 * CL, ldb: CL, beta: 0, c: dv + c0 * 3 * CL, ldc: 3 * CL)
          sgemm(transA: true, transB: false, m: c1 - c0, n: hs, k: T - c0, alpha: scale,
                a: scratch + c0 * T + c0, lda: T, b: q + c0 * 3 * CL, ldb: 3 * CL, beta: 0,
                c: dk + c0 * 3 * CL, ldc: 3 * CL)
          c0 = c1
        }
      }
    }
  }
  precondition(pool.width == 1 || pool.scratchFloats >= T * T, "pool scratch too small for attention backward")
  withSingleThreadedBLAS(pool) {
    pool.forEachRange(B * NH, Heads(dqkv: dqkv, scratch: scratch, dout: dout, qkv: qkv, att: att, T: T, NH: NH,
                                    hs: hs, pool: pool))
  }
}

// MARK: - GELU (tanh approximation)

let geluScale: Float = (2 / Float.pi).squareRoot()

@inline(never)
public func geluForward(_ out: FloatPtr, _ inp: FloatPtr, _ N: Int, pool: WorkerPool = .serial) {
  struct Elements: RangeJob {
    let out: FloatPtr, inp: FloatPtr
    func run(_: Int, _ r: Range<Int>) {
      for i in r {
        let x = inp[i]
        let cube = 0.044715 * x * x * x
        out[i] = 0.5 * x * (1 + fastTanh(geluScale * (x + cube)))
      }
    }
  }
  pool.forEachRange(N, align: 64, Elements(out: out, inp: inp))
}

/// dinp = dout · gelu'(inp) (overwritten; may alias dout).
@inline(never)
public func geluBackward(_ dinp: FloatPtr, _ inp: FloatPtr, _ dout: FloatPtr, _ N: Int) {
  // In place, two pointers: keeps the loop free of the aliasing check that defeats vectorising.
  if dinp == dout {
    for i in 0..<N { dinp[i] *= geluDerivative(inp[i]) }
  } else {
    for i in 0..<N { dinp[i] = geluDerivative(inp[i]) * dout[i] }
  }
}

/// In place over d (N,OC): d = d · gelu'(inp); dbias (OC) = Σ rows of the result (the gradient
/// of the bias added before the GELU).
@inline(never)
public func geluBiasBackward(_ d: FloatPtr, _ dbias: FloatPtr, _ inp: FloatPtr, _ N: Int, _ OC: Int,
                             pool: WorkerPool = .serial) {
  // split by columns, so each thread owns its part of dbias
  struct Columns: RangeJob {
    let d: FloatPtr, dbias: FloatPtr, inp: FloatPtr, N: Int, OC: Int
    func run(_: Int, _ cols: Range<Int>) {
      let (o0, width) = (cols.lowerBound, cols.count)
      let db = dbias + o0
      db.update(repeating: 0, count: width)
      for i in 0..<N {
        let row = d + i * OC + o0
        let x = inp + i * OC + o0
        for o in 0..<width {
          let v = row[o] * geluDerivative(x[o])
          row[o] = v
          db[o] += v
        }
      }
    }
  }
  pool.forEachRange(OC, align: 16, Columns(d: d, dbias: dbias, inp: inp, N: N, OC: OC))
}

@inline(__always)
func geluDerivative(_ x: Float) -> Float {
  let cube = 0.044715 * x * x * x
  let th = fastTanh(geluScale * (x + cube))
  let sech2 = 1 - th * th
  return 0.5 * (1 + th) + x * 0.5 * sech2 * geluScale * (1 + 3 * 0.044715 * x * x)
}

// MARK: - residual

/// out = a + b (N).
@inline(never)
public func residualForward(_ out: FloatPtr, _ a: FloatPtr, _ b: FloatPtr, _ N: Int) {
  for i in 0..<N { out[i] = a[i] + b[i] }
}

// MARK: - fast scalar math

/// exp with ~1 ulp-level relative error (≤ 2e-7) for the softmax range, no libm call.
@inline(__always)
public func fastExp(_ x: Float) -> Float {
  // exp(x) = 2^(x·log2 e) = 2^n · 2^f, f in [-0.5, 0.5]
  let xc = max(-87.0, min(88.0, x))
  let t = xc * 1.442695041
  // round to nearest with the 1.5·2^23 trick (vectorises; roundf is a libm call)
  let n = (t + 12_582_912.0) - 12_582_912.0
  let f = t - n
  // minimax polynomial for 2^f on [-0.5, 0.5], Horner steps as fused multiply-adds (Swift does
  // not contract a * b + c on its own)
  var p: Float = 1.535336188319500e-4
  p = Float(1.339887440266574e-3).addingProduct(p, f)
  p = Float(9.618437357674640e-3).addingProduct(p, f)
  p = Float(5.550332471162809e-2).addingProduct(p, f)
  p = Float(2.402264791363012e-1).addingProduct(p, f)
  p = Float(6.931472028550421e-1).addingProduct(p, f)
  p = Float(1.0).addingProduct(p, f)
  let bits = UInt32(bitPattern: Int32(n) + 127) << 23
  return p * Float(bitPattern: bits)
}

/// tanh as a branch-free 13/6 rational approximation on [-7.9, 7.9] (saturated outside);
/// a few ulp of error, and it vectorises (libm's tanhf does not).
@inline(__always)
public func fastTanh(_ x: Float) -> Float {
  let c = max(-7.90531110763549805, min(7.90531110763549805, x))
  let x2 = c * c
  // Horner steps as fused multiply-adds
  var p: Float = -2.76076847742355e-16
  p = Float(2.00018790482477e-13).addingProduct(p, x2)
  p = Float(-8.60467152213735e-11).addingProduct(p, x2)
  p = Float(5.12229709037114e-08).addingProduct(p, x2)
  p = Float(1.48572235717979e-05).addingProduct(p, x2)
  p = Float(6.37261928875436e-04).addingProduct(p, x2)
  p = Float(4.89352455891786e-03).addingProduct(p, x2)
  p = p * c
  var q: Float = 1.19825839466702e-06
  q = Float(1.18534705686654e-04).addingProduct(q, x2)
  q = Float(2.26843463243900e-03).addingProduct(q, x2)
  q = Float(4.89352518554385e-03).addingProduct(q, x2)
  return p / q
}

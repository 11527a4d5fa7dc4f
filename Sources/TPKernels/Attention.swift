// Causal self-attention over the heads of this rank, in query blocks.

/// Query/key block of the causal attention: blocks above the diagonal are never computed.
let attentionBlock = 64

/// Causal self-attention over `NH` heads of size `hs`.
/// - out (B,T,NH·hs); att (B,NH,T,T) post-softmax probabilities, zero above the diagonal;
///   qkv (B,T,3·NH·hs) laid out [q | k | v] per token, each NH·hs wide.
/// Query block [r0, r1) only needs keys [0, r1): a causal step skips about 3/8 of the products.
/// With a pool, the (batch, head) pairs are claimed one at a time by its threads, each running
/// its small GEMMs on one OpenBLAS thread.
@inline(never)
public func attentionForward(_ out: FloatPtr, _ att: FloatPtr, _ qkv: FloatPtr,
                             _ B: Int, _ T: Int, _ NH: Int, _ hs: Int, pool: WorkerPool = .serial) {
  attentionHeads(out, att, qkv, B, T, NH, hs, pool: pool)
}

/// The attention probabilities alone: att (B,NH,T,T) from qkv (B,T,3·NH·hs), bit-identical to
/// what `attentionForward` records (the same products and softmax, block by block). Activation
/// recomputation runs it in the backward instead of keeping every layer's att.
@inline(never)
public func attentionProbabilities(_ att: FloatPtr, _ qkv: FloatPtr, _ B: Int, _ T: Int, _ NH: Int, _ hs: Int,
                                   pool: WorkerPool = .serial) {
  attentionHeads(nil, att, qkv, B, T, NH, hs, pool: pool)
}

/// `attentionForward`'s work; without `out` only the probabilities.
@inline(__always)
func attentionHeads(_ out: FloatPtr?, _ att: FloatPtr, _ qkv: FloatPtr,
                    _ B: Int, _ T: Int, _ NH: Int, _ hs: Int, pool: WorkerPool) {
  struct Heads: RangeJob {
    let out: FloatPtr?, att: FloatPtr, qkv: FloatPtr, T: Int, NH: Int, hs: Int
    func run(_: Int, _ pairs: Range<Int>) {
      let CL = NH * hs
      let scale = 1 / Float(hs).squareRoot()
      for bh in pairs {
        let (q, k, v) = headQKV(qkv, bh, T, NH, hs)
        let a = att + bh * T * T
        forEachBlock(T) { r0, r1 in
          // preatt[r0..<r1, 0..<r1] = scale · Q Kᵀ
          sgemm(transA: false, transB: true, m: r1 - r0, n: r1, k: hs, alpha: scale, a: q + r0 * 3 * CL,
                lda: 3 * CL, b: k, ldb: 3 * CL, beta: 0, c: a + r0 * T, ldc: T)
          for t in r0..<r1 { softmaxCausalRow(a + t * T, t + 1, r1) }
          // out[r0..<r1] = att[r0..<r1, 0..<r1] · V[0..<r1]
          guard let out else { return }
          let o = headColumns(out, bh, T, NH, hs, rowWidth: CL)
          sgemm(transA: false, transB: false, m: r1 - r0, n: hs, k: r1, a: a + r0 * T, lda: T, b: v,
                ldb: 3 * CL, beta: 0, c: o + r0 * CL, ldc: CL)
        }
      }
    }
  }
  withSingleThreadedBLAS(pool) {
    pool.forEachChunk(B * NH, chunks: B * NH, Heads(out: out, att: att, qkv: qkv, T: T, NH: NH, hs: hs))
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

/// Softmax backward of one causal row in place: d[0..<n] (∂loss/∂att on entry) becomes
/// ∂loss/∂preatt = att · (d − Σ att·d); d[n..<end] = 0 (the rest of the diagonal block).
@inline(__always)
func softmaxCausalBackwardRow(_ d: FloatPtr, _ att: FloatPtr, _ n: Int, _ end: Int) {
  let dot = dot8(att, d, n)
  for s in 0..<n { d[s] = att[s] * (d[s] - dot) }
  if n < end { (d + n).update(repeating: 0, count: end - n) }
}

/// Calls body(b0, b1) for the blocks [b0, b1) of `attentionBlock` rows (the last one partial)
/// that cover 0..<T, in order.
@inline(__always)
func forEachBlock(_ T: Int, _ body: (Int, Int) -> Void) {
  var b0 = 0
  while b0 < T {
    let b1 = min(T, b0 + attentionBlock)
    body(b0, b1)
    b0 = b1
  }
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

/// dqkv (B,T,3·NH·hs) = ∂loss/∂qkv (overwritten) from dout (B,T,NH·hs) and the forward's qkv
/// and att (B,NH,T,T). `scratch` holds T·T floats (with a pool, its other threads use their own
/// scratch, which must hold T·T floats too).
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
        forEachBlock(T) { r0, r1 in
          sgemm(transA: false, transB: true, m: r1 - r0, n: r1, k: hs, a: g + r0 * CL, lda: CL, b: v,
                ldb: 3 * CL, beta: 0, c: scratch + r0 * T, ldc: T)
          for t in r0..<r1 { softmaxCausalBackwardRow(scratch + t * T, a + t * T, t + 1, r1) }
          sgemm(transA: false, transB: false, m: r1 - r0, n: hs, k: r1, alpha: scale, a: scratch + r0 * T,
                lda: T, b: k, ldb: 3 * CL, beta: 0, c: dq + r0 * 3 * CL, ldc: 3 * CL)
        }
        // per key block [c0, c1): only queries t ≥ c0 attend to it
        //   dV = attᵀ dout ; dK = scale · dpreᵀ Q
        forEachBlock(T) { c0, c1 in
          sgemm(transA: true, transB: false, m: c1 - c0, n: hs, k: T - c0, a: a + c0 * T + c0, lda: T,
                b: g + c0 * CL, ldb: CL, beta: 0, c: dv + c0 * 3 * CL, ldc: 3 * CL)
          sgemm(transA: true, transB: false, m: c1 - c0, n: hs, k: T - c0, alpha: scale,
                a: scratch + c0 * T + c0, lda: T, b: q + c0 * 3 * CL, ldb: 3 * CL, beta: 0,
                c: dk + c0 * 3 * CL, ldc: 3 * CL)
        }
      }
    }
  }
  precondition(pool.width == 1 || pool.scratchFloats >= T * T, "pool scratch too small for attention backward")
  withSingleThreadedBLAS(pool) {
    pool.forEachChunk(B * NH, chunks: B * NH,
                      Heads(dqkv: dqkv, scratch: scratch, dout: dout, qkv: qkv, att: att, T: T, NH: NH, hs: hs,
                            pool: pool))
  }
}

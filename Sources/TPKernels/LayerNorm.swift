// LayerNorm (eps 1e-5) forward and backward, and the fused end of a residual block.

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

/// out (N,C) = (inp (N,C) − mean) · rstd · weight (C) + bias (C); records each row's mean and
/// rstd (N) for backward.
@inline(never)
public func layernormForward(_ out: FloatPtr, _ mean: FloatPtr, _ rstd: FloatPtr, _ inp: FloatPtr,
                             _ weight: FloatPtr, _ bias: FloatPtr, _ N: Int, _ C: Int,
                             pool: WorkerPool = .serial) {
  struct Rows: IndexJob {
    let out: FloatPtr, mean: FloatPtr, rstd: FloatPtr, inp: FloatPtr, weight: FloatPtr, bias: FloatPtr, C: Int
    func run(_ i: Int) { layernormRow(out + i * C, &mean[i], &rstd[i], inp + i * C, weight, bias, C) }
  }
  pool.forEach(N, Rows(out: out, mean: mean, rstd: rstd, inp: inp, weight: weight, bias: bias, C: C))
}

/// One row of LayerNorm (eps 1e-5): o (C) from x (C); the row's mean and rstd.
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
/// residualOut (N,C) = residualIn (N,C) + proj (N,C) + projBias (C), then
/// out (N,C) = LayerNorm(residualOut) with weight, bias (C) (records mean and rstd, N).
/// `projBias` is the row-parallel layer's deferred bias (Megatron's skip-bias-add, fused here
/// with the residual add). Each row is finished while it is still in L1.
@inline(never)
public func residualLayernormForward(_ residualOut: FloatPtr, _ out: FloatPtr, _ mean: FloatPtr,
                                     _ rstd: FloatPtr, _ residualIn: FloatPtr, _ proj: FloatPtr,
                                     _ projBias: FloatPtr, _ weight: FloatPtr, _ bias: FloatPtr,
                                     _ N: Int, _ C: Int, pool: WorkerPool = .serial) {
  struct Rows: IndexJob {
    let residualOut: FloatPtr, out: FloatPtr, mean: FloatPtr, rstd: FloatPtr, residualIn: FloatPtr
    let proj: FloatPtr, projBias: FloatPtr, weight: FloatPtr, bias: FloatPtr, C: Int
    func run(_ i: Int) {
      let r = residualOut + i * C
      residualRow(r, residualIn + i * C, proj + i * C, projBias, C)
      layernormRow(out + i * C, &mean[i], &rstd[i], r, weight, bias, C)
    }
  }
  pool.forEach(N, Rows(residualOut: residualOut, out: out, mean: mean, rstd: rstd, residualIn: residualIn,
                            proj: proj, projBias: projBias, weight: weight, bias: bias, C: C))
}

/// One row of a residual add with a deferred bias: r (C) = a + (p + bias).
@inline(__always)
func residualRow(_ r: FloatPtr, _ a: FloatPtr, _ p: FloatPtr, _ bias: FloatPtr, _ C: Int) {
  for c in 0..<C { r[c] = a[c] + (p[c] + bias[c]) }
}

/// LayerNorm backward over N rows of C: dinp (N,C) += ∂loss/∂inp (or = with
/// `accumulateInput: false`); dweight, dbias (C) are overwritten. dout, inp (N,C); weight (C);
/// mean, rstd (N) as the forward recorded them. With a pool, its scratch must hold 3·C floats.
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

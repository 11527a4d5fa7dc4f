// GELU, tanh approximation (as GPT-2), forward and the fused backward with its bias gradient.

let geluScale: Float = (2 / Float.pi).squareRoot()

/// out (N) = GELU(inp (N)); elements split over the pool.
@inline(never)
public func geluForward(_ out: FloatPtr, _ inp: FloatPtr, _ N: Int, pool: WorkerPool = .serial) {
  // A range job, not an IndexJob: the loop over a thread's elements must be one vectorised loop,
  // and a per-element call (which the compiler does not always inline) costs as much as the GELU.
  struct Elements: RangeJob {
    let out: FloatPtr, inp: FloatPtr
    func run(_: Int, _ range: Range<Int>) {
      for i in range { out[i] = gelu(inp[i]) }
    }
  }
  pool.forEachClaimed(N, align: 64, Elements(out: out, inp: inp))
}

/// In place over d (N,OC): d = d · gelu'(inp (N,OC)); dbias (OC) = Σ rows of the result (the
/// gradient of the bias added before the GELU), overwritten. Split by columns, so each chunk
/// owns its part of dbias.
@inline(never)
public func geluBiasBackward(_ d: FloatPtr, _ dbias: FloatPtr, _ inp: FloatPtr, _ N: Int, _ OC: Int,
                             pool: WorkerPool = .serial) {
  struct Columns: RangeJob {
    let d: FloatPtr, dbias: FloatPtr, inp: FloatPtr, N: Int, OC: Int
    func run(_: Int, _ cols: Range<Int>) { geluBiasBackwardColumns(d, dbias, inp, N, OC, cols) }
  }
  pool.forEachClaimed(OC, align: 16, Columns(d: d, dbias: dbias, inp: inp, N: N, OC: OC))
}

/// Columns `cols` of d (N,OC), in place: d ·= gelu'(inp); dbias[cols] = Σ rows of the result.
@inline(__always)
func geluBiasBackwardColumns(_ d: FloatPtr, _ dbias: FloatPtr, _ inp: FloatPtr, _ N: Int, _ OC: Int,
                             _ cols: Range<Int>) {
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

/// GELU(x) = 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 x³))).
@inline(__always)
func gelu(_ x: Float) -> Float {
  let cube = 0.044715 * x * x * x
  return 0.5 * x * (1 + fastTanh(geluScale * (x + cube)))
}

/// d GELU(x) / dx.
@inline(__always)
func geluDerivative(_ x: Float) -> Float {
  let cube = 0.044715 * x * x * x
  let th = fastTanh(geluScale * (x + cube))
  let sech2 = 1 - th * th
  return 0.5 * (1 + th) + x * 0.5 * sech2 * geluScale * (1 + 3 * 0.044715 * x * x)
}

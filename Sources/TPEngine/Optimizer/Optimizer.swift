// AdamW (with bias correction, weight decay on every parameter as in llm.c), global gradient
// norm across TP shards, clipping and the learning-rate schedule.

import Glibc
import TPComm
import TPKernels

public struct AdamWConfig: Sendable {
  public var learningRate: Float = 3e-4
  public var beta1: Float = 0.9
  public var beta2: Float = 0.999
  public var eps: Float = 1e-8
  public var weightDecay: Float = 0
  /// Clip the global gradient norm to this value; 0 = off.
  public var gradClip: Float = 0
  public init() {}
}

/// Warmup + cosine (or constant) learning-rate schedule.
public struct LRSchedule: Sendable {
  public enum Kind: String, Sendable { case constant, cosine }
  public var kind: Kind = .constant
  public var warmupSteps: Int = 0
  /// Final learning rate of the cosine, as a fraction of the peak.
  public var minFraction: Float = 0.1
  public init() {}

  /// Learning rate for step `k` (from 0) of `total`.
  public func rate(peak: Float, step k: Int, total: Int) -> Float {
    if k < warmupSteps { return peak * Float(k + 1) / Float(warmupSteps) }
    switch kind {
    case .constant: return peak
    case .cosine:
      let span = max(1, total - warmupSteps)
      let progress = min(1, Float(k - warmupSteps) / Float(span))
      let minLR = peak * minFraction
      return minLR + 0.5 * (1 + Float.cos(Float.pi * progress)) * (peak - minLR)
    }
  }
}

extension Float {
  @inline(__always) static func cos(_ x: Float) -> Float { Float(Glibc.cos(Double(x))) }
}


extension GPT {
  /// Global L2 norm of `scale · grads`: sharded tensors summed over TP, replicated tensors once.
  /// With `perTensor`, also stores each local tensor's Σ(scale·g)² (`ParameterViews.tensorCount`
  /// doubles).
  public func gradientNorm(tpGroup: Communicator, scale: Float = 1,
                           perTensor: UnsafeMutablePointer<Double>? = nil) -> Float {
    let squares = perTensor ?? normScratch
    tensorSquares(squares, scale: scale, range: 0..<numLocalParameters)
    return globalNorm(tensorSquares: squares, tpGroup: tpGroup)
  }

  /// Each local tensor's Σ(scale·g)² over the part of it inside the flat `range` (into
  /// `squares`, `ParameterViews.tensorCount` doubles; 0 for tensors outside it).
  func tensorSquares(_ squares: UnsafeMutablePointer<Double>, scale: Float, range: Range<Int>) {
    struct Squares: RangeJob {
      let grads: FloatPtr, sizes: [Int], base: Int, pool: WorkerPool
      func run(_ w: Int, _ range: Range<Int>) {
        let part = pool.doubleScratch(w)
        part.update(repeating: 0, count: sizes.count)
        forEachTensorPiece(sizes, range.shifted(by: base)) { tensor, lo, hi in part[tensor] = sumOfSquares(grads + lo, hi - lo) }
      }
    }
    pool.forEachRange(range.count, align: 64, Squares(grads: gradsMemory, sizes: localSizes, base: range.lowerBound, pool: pool))
    let s2 = Double(scale) * Double(scale)
    for i in 0..<localSizes.count {
      squares[i] = 0
      for w in 0..<pool.width { squares[i] += pool.doubleScratch(w)[i] }
      squares[i] *= s2
    }
  }

  /// The global gradient norm from each local tensor's Σg² (as `adamWUpdate` records them).
  public func globalNorm(tensorSquares squares: UnsafeMutablePointer<Double>, tpGroup: Communicator) -> Float {
    var sharded: Double = 0, replicated: Double = 0
    for i in 0..<localSizes.count {
      if replicatedMask[i] { replicated += squares[i] } else { sharded += squares[i] }
    }
    var total = sharded + (local.tpRank == 0 ? replicated : 0)
    tpGroup.allReduce(&total, count: 1, .sum)
    return Float(total.squareRoot())
  }

  /// One AdamW update at optimizer step `t` (from 1) with gradients `gradScale · grads`, in one
  /// sweep over parameters, gradients and moments, of the parameters in the flat `range` (the
  /// rank's optimizer partition; all of them by default). Per local tensor it can also record
  /// `gradSquares` (`ParameterViews.tensorCount` doubles: Σ(gradScale·g)², for the gradient norm when no clipping needs it
  /// beforehand) and `stats` (2 doubles each: Σ update², Σ new weight²).
  public func adamWUpdate(_ o: AdamWConfig, lr: Float, t: Int, gradScale: Float = 1, range: Range<Int>? = nil,
                          gradSquares: UnsafeMutablePointer<Double>? = nil,
                          stats: UnsafeMutablePointer<Double>? = nil) {
    let k = AdamWConstants(o, lr: lr, t: t, gradScale: gradScale)
    let count = localSizes.count
    let (wantSquares, wantStats) = (gradSquares != nil, stats != nil)
    let range = range ?? 0..<numLocalParameters
    // moment k belongs to flat parameter partition.block.lowerBound + k
    let momentBase = partition.block.lowerBound
    precondition(range.lowerBound >= momentBase && range.upperBound <= momentBase + partition.shardCount,
                 "AdamW runs on parameters whose moments this rank holds")
    // the flat parameter range split over the pool; per thread, 3 sums per tensor
    struct Update: RangeJob {
      let params: FloatPtr, grads: FloatPtr, adamM: FloatPtr, adamV: FloatPtr, sizes: [Int], base: Int, momentBase: Int
      let pool: WorkerPool, k: AdamWConstants, wantSquares: Bool, wantStats: Bool
      func run(_ w: Int, _ range: Range<Int>) {
        let part = pool.doubleScratch(w)
        part.update(repeating: 0, count: 3 * sizes.count)
        forEachTensorPiece(sizes, range.shifted(by: base)) { tensor, lo, hi in
          let (p, g, n) = (params + lo, grads + lo, hi - lo)
          let (m, v) = (adamM + (lo - momentBase), adamV + (lo - momentBase))
          let sums: (g2: Double, du: Double, w2: Double)
          switch (wantSquares, wantStats) {
          case (false, false): sums = adamWRange(p, g, m, v, n, k, squares: false, stats: false)
          case (true, false): sums = adamWRange(p, g, m, v, n, k, squares: true, stats: false)
          case (false, true): sums = adamWRange(p, g, m, v, n, k, squares: false, stats: true)
          case (true, true): sums = adamWRange(p, g, m, v, n, k, squares: true, stats: true)
          }
          part[3 * tensor] = sums.g2
          part[3 * tensor + 1] = sums.du
          part[3 * tensor + 2] = sums.w2
        }
      }
    }
    pool.forEachRange(range.count, align: 64,
                      Update(params: paramsMemory, grads: gradsMemory, adamM: adamM, adamV: adamV, sizes: localSizes,
                             base: range.lowerBound, momentBase: momentBase, pool: pool,
                             k: k, wantSquares: wantSquares, wantStats: wantStats))
    for tensor in 0..<count {
      var (g2, du, w2) = (0.0, 0.0, 0.0)
      for w in 0..<pool.width {
        let part = pool.doubleScratch(w)
        g2 += part[3 * tensor]; du += part[3 * tensor + 1]; w2 += part[3 * tensor + 2]
      }
      gradSquares?[tensor] = g2
      if let stats {
        stats[2 * tensor] = du
        stats[2 * tensor + 1] = w2
      }
    }
  }
}

extension Range where Bound == Int {
  /// The range moved `base` elements up.
  @inline(__always)
  func shifted(by base: Int) -> Range<Int> { (lowerBound + base)..<(upperBound + base) }
}

/// Calls `body(tensor, lo, hi)` for each tensor's part [lo, hi) of the flat range, the tensors
/// lying back to back with `sizes` elements each.
@inline(__always)
func forEachTensorPiece(_ sizes: [Int], _ range: Range<Int>, _ body: (Int, Int, Int) -> Void) {
  var offset = 0
  for tensor in 0..<sizes.count {
    let end = offset + sizes[tensor]
    let lo = max(offset, range.lowerBound), hi = min(end, range.upperBound)
    if lo < hi { body(tensor, lo, hi) }
    offset = end
  }
}

struct AdamWConstants {
  let b1, c1, b2, c2, lr, invB1c, invB2c, eps, wd, gradScale: Float
  init(_ o: AdamWConfig, lr: Float, t: Int, gradScale: Float) {
    b1 = o.beta1; c1 = 1 - o.beta1; b2 = o.beta2; c2 = 1 - o.beta2
    self.lr = lr
    invB1c = 1 / (1 - Float(Glibc.pow(Double(o.beta1), Double(t))))
    invB2c = 1 / (1 - Float(Glibc.pow(Double(o.beta2), Double(t))))
    eps = o.eps; wd = o.weightDecay
    self.gradScale = gradScale
  }
}

/// Σ x² over n floats: 8 float lanes per block of 4096, blocks summed in double.
@inline(never)
func sumOfSquares(_ x: FloatPtr, _ n: Int) -> Double {
  var total: Double = 0
  var i = 0
  while i < n {
    let end = min(n, i + 4096)
    var acc = SIMD8<Float>()
    while i + 8 <= end {
      let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
      acc += v * v
      i += 8
    }
    var s = acc.sum()
    while i < end { s += x[i] * x[i]; i += 1 }
    total += Double(s)
  }
  return total
}

/// AdamW over one tensor, 8 lanes at a time: m, v, θ updated in place; returns the optional
/// sums (float lanes per block of 4096, blocks summed in double).
@inline(__always)
func adamWRange(_ p: FloatPtr, _ g: FloatPtr, _ m: FloatPtr, _ v: FloatPtr, _ n: Int, _ k: AdamWConstants,
                squares: Bool, stats: Bool) -> (g2: Double, du: Double, w2: Double) {
  typealias V = SIMD8<Float>
  @inline(__always) func load(_ q: FloatPtr, _ i: Int) -> V { UnsafeRawPointer(q + i).loadUnaligned(as: V.self) }
  @inline(__always) func store(_ x: V, _ q: FloatPtr, _ i: Int) { UnsafeMutableRawPointer(q + i).storeBytes(of: x, as: V.self) }
  var (g2, du, w2) = (0.0, 0.0, 0.0)
  var i = 0
  while i < n {
    let end = min(n, i + 4096)
    var (ag, ad, aw) = (V(), V(), V())
    while i + 8 <= end {
      let gr = load(g, i) * k.gradScale
      let mv = k.b1 * load(m, i) + k.c1 * gr
      let vv = k.b2 * load(v, i) + k.c2 * (gr * gr)
      store(mv, m, i)
      store(vv, v, i)
      let pv = load(p, i)
      let delta = k.lr * ((mv * k.invB1c) / ((vv * k.invB2c).squareRoot() + k.eps) + k.wd * pv)
      let np = pv - delta
      store(np, p, i)
      if squares { ag += gr * gr }
      if stats { ad += delta * delta; aw += np * np }
      i += 8
    }
    var (sg, sd, sw) = (ag.sum(), ad.sum(), aw.sum())
    while i < end {
      let gr = g[i] * k.gradScale
      let mv = k.b1 * m[i] + k.c1 * gr
      let vv = k.b2 * v[i] + k.c2 * (gr * gr)
      m[i] = mv
      v[i] = vv
      let delta = k.lr * ((mv * k.invB1c) / ((vv * k.invB2c).squareRoot() + k.eps) + k.wd * p[i])
      p[i] -= delta
      if squares { sg += gr * gr }
      if stats { sd += delta * delta; sw += p[i] * p[i] }
      i += 1
    }
    g2 += Double(sg); du += Double(sd); w2 += Double(sw)
  }
  return (g2, du, w2)
}

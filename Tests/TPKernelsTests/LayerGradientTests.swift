import Foundation
import XCTest
@testable import TPKernels

/// Each layer's backward against central finite differences of the scalar probe
/// loss L = Σ out ⊙ R (R random), so ∂L/∂out = R.
final class LayerGradientTests: XCTestCase {
  struct Rng {
    var s: UInt64
    mutating func next() -> Float {
      s = s &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int64(bitPattern: s >> 11) % 2_000_001 - 1_000_000) / 1_000_000
    }
  }

  final class Buf {
    let p: FloatPtr
    let n: Int
    init(_ n: Int, _ rng: inout Rng, scale: Float = 1) {
      self.n = n
      p = .allocate(capacity: n)
      for i in 0..<n { p[i] = rng.next() * scale }
    }
    init(zeros n: Int) { self.n = n; p = .allocate(capacity: n); p.initialize(repeating: 0, count: n) }
    deinit { p.deallocate() }
    subscript(i: Int) -> Float { get { p[i] } set { p[i] = newValue } }
  }

  /// Compares analytic gradient `grad` of `x` with finite differences of `loss()`.
  func checkGradient(_ name: String, x: Buf, grad: Buf, eps: Float = 1e-2, tol: Float = 2e-2,
                     loss: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
    var worst: Float = 0
    let stride = max(1, x.n / 40)
    for i in Swift.stride(from: 0, to: x.n, by: stride) {
      let old = x[i]
      x[i] = old + eps
      let lp = loss()
      x[i] = old - eps
      let lm = loss()
      x[i] = old
      let fd = Float((lp - lm) / Double(2 * eps))
      let err = abs(fd - grad[i]) / max(1, abs(fd), abs(grad[i]))
      worst = max(worst, err)
      if err > tol {
        XCTFail("\(name)[\(i)]: finite difference \(fd) vs backward \(grad[i])", file: file, line: line)
        return
      }
    }
    XCTAssertLessThan(worst, tol, name, file: file, line: line)
  }

  func probe(_ out: Buf, _ r: Buf) -> Double {
    var s: Double = 0
    for i in 0..<out.n { s += Double(out[i]) * Double(r[i]) }
    return s
  }

  func testLayerNormBackward() {
    var rng = Rng(s: 1)
    let (N, C) = (6, 16)
    let x = Buf(N * C, &rng, scale: 2), w = Buf(C, &rng), b = Buf(C, &rng), r = Buf(N * C, &rng)
    let out = Buf(zeros: N * C), mean = Buf(zeros: N), rstd = Buf(zeros: N)
    func loss() -> Double {
      layernormForward(out.p, mean.p, rstd.p, x.p, w.p, b.p, N, C)
      return probe(out, r)
    }
    _ = loss()
    let dx = Buf(zeros: N * C), dw = Buf(zeros: C), db = Buf(zeros: C)
    layernormBackward(dx.p, dw.p, db.p, r.p, x.p, w.p, mean.p, rstd.p, N, C)
    checkGradient("layernorm dx", x: x, grad: dx, loss: loss)
    checkGradient("layernorm dw", x: w, grad: dw, loss: loss)
    checkGradient("layernorm db", x: b, grad: db, loss: loss)
    // the normalised output has zero mean and unit variance per row (before the affine part)
    let one = Buf(zeros: C), zero = Buf(zeros: C)
    for i in 0..<C { one[i] = 1 }
    layernormForward(out.p, mean.p, rstd.p, x.p, one.p, zero.p, N, C)
    var m: Double = 0, v: Double = 0
    for c in 0..<C { m += Double(out[c]) }
    for c in 0..<C { v += Double(out[c]) * Double(out[c]) }
    XCTAssertEqual(m / Double(C), 0, accuracy: 1e-5)
    XCTAssertEqual(v / Double(C), 1, accuracy: 1e-3)
  }

  func testMatmulBackward() {
    var rng = Rng(s: 2)
    let (N, IC, OC) = (5, 12, 7)
    let x = Buf(N * IC, &rng), w = Buf(OC * IC, &rng), b = Buf(OC, &rng), r = Buf(N * OC, &rng)
    let out = Buf(zeros: N * OC)
    func loss() -> Double {
      matmulForward(out.p, x.p, w.p, b.p, N, IC, OC)
      return probe(out, r)
    }
    _ = loss()
    // forward against a plain triple loop
    for i in 0..<N {
      for o in 0..<OC {
        var s = b[o]
        for k in 0..<IC { s += x[i * IC + k] * w[o * IC + k] }
        XCTAssertEqual(out[i * OC + o], s, accuracy: 1e-5)
      }
    }
    let dx = Buf(zeros: N * IC), dw = Buf(zeros: OC * IC), db = Buf(zeros: OC)
    matmulBackward(dx.p, dw.p, db.p, r.p, x.p, w.p, N, IC, OC)
    checkGradient("matmul dx", x: x, grad: dx, loss: loss)
    checkGradient("matmul dw", x: w, grad: dw, loss: loss)
    checkGradient("matmul db", x: b, grad: db, loss: loss)
  }

  func testAttentionBackward() throws {
    try checkAttention(B: 2, T: 5, NH: 2, hs: 4)
  }

  /// Longer than two causal blocks (the last one partial).
  func testBlockedCausalAttentionBackward() throws {
    XCTAssertGreaterThan(130, 2 * attentionBlock)
    try checkAttention(B: 1, T: 130, NH: 1, hs: 3)
  }

  func checkAttention(B: Int, T: Int, NH: Int, hs: Int) throws {
    var rng = Rng(s: 3)
    let qkv = Buf(B * T * 3 * NH * hs, &rng), r = Buf(B * T * NH * hs, &rng)
    let out = Buf(zeros: B * T * NH * hs), att = Buf(zeros: B * NH * T * T)
    func loss() -> Double {
      attentionForward(out.p, att.p, qkv.p, B, T, NH, hs)
      return probe(out, r)
    }
    _ = loss()
    // causal: probabilities above the diagonal are zero, rows sum to one
    for bh in 0..<(B * NH) {
      for t in 0..<T {
        var s: Float = 0
        for u in 0..<T {
          let a = att[(bh * T + t) * T + u]
          if u > t { XCTAssertEqual(a, 0) }
          s += a
        }
        XCTAssertEqual(s, 1, accuracy: 1e-5)
      }
    }
    // forward against a direct O(T²) evaluation in double
    for b in 0..<B {
      for h in 0..<NH {
        for t in Swift.stride(from: 0, to: T, by: max(1, T / 7)) {
          var w = [Double](repeating: 0, count: t + 1)
          for u in 0...t {
            var d: Double = 0
            for c in 0..<hs { d += Double(qkv[(b * T + t) * 3 * NH * hs + h * hs + c]) * Double(qkv[(b * T + u) * 3 * NH * hs + NH * hs + h * hs + c]) }
            w[u] = d / Double(hs).squareRoot()
          }
          let m = w.max()!
          let e = w.map { Foundation.exp($0 - m) }
          let z = e.reduce(0, +)
          for c in 0..<hs {
            var y: Double = 0
            for u in 0...t { y += e[u] / z * Double(qkv[(b * T + u) * 3 * NH * hs + 2 * NH * hs + h * hs + c]) }
            XCTAssertEqual(Double(out[(b * T + t) * NH * hs + h * hs + c]), y, accuracy: 1e-5)
          }
        }
      }
    }
    let dqkv = Buf(zeros: qkv.n), scratch = Buf(zeros: T * T)
    attentionBackward(dqkv.p, scratch.p, r.p, qkv.p, att.p, B, T, NH, hs)
    checkGradient("attention dqkv", x: qkv, grad: dqkv, loss: loss)
  }

  func testGeluBackward() {
    var rng = Rng(s: 4)
    let N = 64
    let x = Buf(N, &rng, scale: 4), r = Buf(N, &rng), out = Buf(zeros: N)
    func loss() -> Double {
      geluForward(out.p, x.p, N)
      return probe(out, r)
    }
    _ = loss()
    for i in 0..<N {
      let v = Double(x[i])
      let ref = 0.5 * v * (1 + tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))
      XCTAssertEqual(Double(out[i]), ref, accuracy: 1e-5)
    }
    let dx = Buf(zeros: N)
    geluBackward(dx.p, x.p, r.p, N)
    checkGradient("gelu dx", x: x, grad: dx, eps: 1e-3, loss: loss)
  }

  func testEmbeddingBackward() {
    var rng = Rng(s: 5)
    let (B, T, C, Vl, start) = (2, 3, 4, 5, 5)  // this rank owns ids 5..9
    let wte = Buf(Vl * C, &rng), wpe = Buf(T * C, &rng), r = Buf(B * T * C, &rng)
    let tokens: [Int32] = [5, 9, 2, 7, 7, 0]
    let out = Buf(zeros: B * T * C)
    func loss() -> Double {
      tokens.withUnsafeBufferPointer { embeddingForward(out.p, $0.baseAddress!, wte.p, B * T, C, start, Vl) }
      positionForward(out.p, wpe.p, B, T, C)
      return probe(out, r)
    }
    _ = loss()
    // ids outside this rank's range contribute zero
    XCTAssertEqual(out[2 * C], wpe[2 * C])
    let dwte = Buf(zeros: Vl * C), dwpe = Buf(zeros: T * C)
    tokens.withUnsafeBufferPointer { embeddingBackward(dwte.p, r.p, $0.baseAddress!, B * T, C, start, Vl) }
    positionBackward(dwpe.p, r.p, B, T, C)
    checkGradient("embedding dwte", x: wte, grad: dwte, loss: loss)
    checkGradient("embedding dwpe", x: wpe, grad: dwpe, loss: loss)
  }

  /// Sequence-parallel slices: the position embedding of rows [r0, r0+N) (slices that start and
  /// end inside a sequence) equals those rows of the whole forward, and the slices' gradients
  /// summed over the ranks equal the whole backward's.
  func testPositionEmbeddingOnRowSlices() {
    var rng = Rng(s: 8)
    let (B, T, C, t) = (3, 4, 5, 4)  // 12 rows, 3 per rank
    let wpe = Buf(T * C, &rng), r = Buf(B * T * C, &rng)
    let whole = Buf(zeros: B * T * C), sliced = Buf(zeros: B * T * C)
    positionForward(whole.p, wpe.p, B, T, C)
    let n = B * T / t
    for rank in 0..<t { positionRowsForward(sliced.p + rank * n * C, wpe.p, rank * n, n, T, C) }
    for i in 0..<(B * T * C) { XCTAssertEqual(sliced[i], whole[i]) }
    let dwpe = Buf(zeros: T * C), part = Buf(zeros: T * C), sum = Buf(zeros: T * C)
    positionBackward(dwpe.p, r.p, B, T, C)
    for rank in 0..<t {
      part.p.update(repeating: 7, count: T * C)  // overwritten, not accumulated
      positionRowsBackward(part.p, r.p + rank * n * C, rank * n, n, T, C)
      for i in 0..<(T * C) { sum[i] += part[i] }
    }
    for i in 0..<(T * C) { XCTAssertEqual(sum[i], dwpe[i], accuracy: 1e-6) }
  }

  /// Recomputation: the probabilities alone are bit-identical to what the forward records.
  func testAttentionProbabilitiesAreTheForwardsOwn() {
    var rng = Rng(s: 9)
    let (B, T, NH, hs) = (2, 70, 2, 4)
    let qkv = Buf(B * T * 3 * NH * hs, &rng), out = Buf(zeros: B * T * NH * hs)
    let att = Buf(zeros: B * NH * T * T), again = Buf(B * NH * T * T, &rng)
    attentionForward(out.p, att.p, qkv.p, B, T, NH, hs)
    attentionProbabilities(again.p, qkv.p, B, T, NH, hs)
    // every entry the forward wrote (the causal blocks; the rest is never read)
    for bh in 0..<(B * NH) {
      for row in 0..<T {
        let end = min(T, (row / attentionBlock + 1) * attentionBlock)
        for u in 0..<end { XCTAssertEqual(again[(bh * T + row) * T + u].bitPattern, att[(bh * T + row) * T + u].bitPattern) }
      }
    }
  }

  func testCrossEntropyBackward() {
    // one rank holding the whole (padded) vocabulary: the reductions are identities
    var rng = Rng(s: 6)
    let (BT, Vl, valid) = (4, 8, 6)
    let logits = Buf(BT * Vl, &rng, scale: 3)
    let targets: [Int32] = [0, 5, 3, 1]
    let rowMax = Buf(zeros: BT), packed = Buf(zeros: 2 * BT), losses = Buf(zeros: BT)
    let work = Buf(zeros: BT * Vl)
    func loss() -> Double {
      crossEntropyLocalMax(rowMax.p, logits.p, BT, Vl, valid)
      targets.withUnsafeBufferPointer {
        crossEntropyLocalSums(packed.p, logits.p, rowMax.p, $0.baseAddress!, BT, Vl, valid, 0)
      }
      return Double(crossEntropyFinish(losses.p, rowMax.p, packed.p, BT))
    }
    let l0 = loss()
    // against log-softmax computed directly in double, padded entries excluded
    var ref: Double = 0
    for i in 0..<BT {
      var s: Double = 0
      for j in 0..<valid { s += exp(Double(logits[i * Vl + j])) }
      ref += log(s) - Double(logits[i * Vl + Int(targets[i])])
    }
    XCTAssertEqual(l0, ref / Double(BT), accuracy: 1e-5)
    work.p.update(from: logits.p, count: BT * Vl)
    targets.withUnsafeBufferPointer {
      crossEntropyBackward(work.p, rowMax.p, packed.p, $0.baseAddress!, 1 / Float(BT), BT, Vl, valid, 0)
    }
    for i in 0..<BT { for j in valid..<Vl { XCTAssertEqual(work[i * Vl + j], 0, "padded entries get no gradient") } }
    checkGradient("cross-entropy dlogits", x: logits, grad: work, eps: 1e-3, tol: 1e-2, loss: loss)
  }
}

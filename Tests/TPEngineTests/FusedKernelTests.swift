import XCTest
@testable import TPEngine

/// The fused kernels against the unfused ones they replace, and the vectorised AdamW against a
/// scalar transcription of the update rule.
final class FusedKernelTests: XCTestCase {
  typealias Buf = LayerGradientTests.Buf
  typealias Rng = LayerGradientTests.Rng

  func testResidualLayernormForwardEqualsTheSeparatePasses() {
    var rng = Rng(s: 11)
    let (N, C) = (7, 20)  // C not a multiple of 8: the scalar tails run too
    let res = Buf(N * C, &rng), proj = Buf(N * C, &rng), pb = Buf(C, &rng)
    let w = Buf(C, &rng), b = Buf(C, &rng)
    // fused
    let r2 = Buf(zeros: N * C), out = Buf(zeros: N * C), mean = Buf(zeros: N), rstd = Buf(zeros: N)
    residualLayernormForward(r2.p, out.p, mean.p, rstd.p, res.p, proj.p, pb.p, w.p, b.p, N, C)
    // separate: bias, residual, LayerNorm
    let p2 = Buf(zeros: N * C), r2ref = Buf(zeros: N * C), outRef = Buf(zeros: N * C)
    let meanRef = Buf(zeros: N), rstdRef = Buf(zeros: N)
    p2.p.update(from: proj.p, count: N * C)
    biasForward(p2.p, pb.p, N, C)
    residualForward(r2ref.p, res.p, p2.p, N * C)
    layernormForward(outRef.p, meanRef.p, rstdRef.p, r2ref.p, w.p, b.p, N, C)
    for i in 0..<(N * C) {
      XCTAssertEqual(r2[i], r2ref[i], "residual \(i)")
      XCTAssertEqual(out[i], outRef[i], "layernorm \(i)")
    }
    for i in 0..<N {
      XCTAssertEqual(mean[i], meanRef[i])
      XCTAssertEqual(rstd[i], rstdRef[i])
    }
  }

  func testLayernormBackwardOverwritesAndSumsColumns() {
    var rng = Rng(s: 12)
    let (N, C) = (5, 12)
    let x = Buf(N * C, &rng, scale: 2), w = Buf(C, &rng), b = Buf(C, &rng), dout = Buf(N * C, &rng)
    let out = Buf(zeros: N * C), mean = Buf(zeros: N), rstd = Buf(zeros: N)
    layernormForward(out.p, mean.p, rstd.p, x.p, w.p, b.p, N, C)
    // reference: accumulate into zeroed buffers
    let dx0 = Buf(zeros: N * C), dw0 = Buf(zeros: C), db0 = Buf(zeros: C)
    layernormBackward(dx0.p, dw0.p, db0.p, dout.p, x.p, w.p, mean.p, rstd.p, N, C)
    // stale gradients are overwritten; dinp is accumulated onto what it held
    let base = Buf(N * C, &rng)
    let dx = Buf(zeros: N * C), dw = Buf(C, &rng), db = Buf(C, &rng), sums = Buf(C, &rng)
    dx.p.update(from: base.p, count: N * C)
    layernormBackward(dx.p, dw.p, db.p, dout.p, x.p, w.p, mean.p, rstd.p, N, C, dinpColumnSums: sums.p)
    for c in 0..<C {
      XCTAssertEqual(dw[c], dw0[c])
      XCTAssertEqual(db[c], db0[c])
      var s: Float = 0
      for i in 0..<N { s += dx[i * C + c] }
      XCTAssertEqual(sums[c], s, accuracy: 1e-5)
    }
    for i in 0..<(N * C) { XCTAssertEqual(dx[i], base[i] + dx0[i], accuracy: 1e-6) }
    // accumulateInput: false ignores what dinp held
    layernormBackward(dx.p, dw.p, db.p, dout.p, x.p, w.p, mean.p, rstd.p, N, C, accumulateInput: false)
    for i in 0..<(N * C) { XCTAssertEqual(dx[i], dx0[i]) }
  }

  func testGeluBiasBackwardEqualsGeluThenBias() {
    var rng = Rng(s: 13)
    let (N, OC) = (6, 13)
    let x = Buf(N * OC, &rng, scale: 3), dout = Buf(N * OC, &rng)
    let ref = Buf(zeros: N * OC), dbRef = Buf(zeros: OC)
    geluBackward(ref.p, x.p, dout.p, N * OC)
    biasBackward(dbRef.p, ref.p, N, OC)
    let d = Buf(zeros: N * OC), db = Buf(OC, &rng)  // db holds stale values: overwritten
    d.p.update(from: dout.p, count: N * OC)
    geluBiasBackward(d.p, db.p, x.p, N, OC)
    for i in 0..<(N * OC) { XCTAssertEqual(d[i], ref[i]) }
    for o in 0..<OC { XCTAssertEqual(db[o], dbRef[o], accuracy: 1e-6) }
  }

  func testMatmulBackwardOverwritesTheWeightGradient() {
    var rng = Rng(s: 14)
    let (N, IC, OC) = (4, 6, 5)
    let x = Buf(N * IC, &rng), w = Buf(OC * IC, &rng), dout = Buf(N * OC, &rng)
    let dx = Buf(zeros: N * IC), dw = Buf(OC * IC, &rng), db = Buf(OC, &rng)
    matmulBackward(dx.p, dw.p, db.p, dout.p, x.p, w.p, N, IC, OC)
    for o in 0..<OC {
      for k in 0..<IC {
        var s: Float = 0
        for i in 0..<N { s += dout[i * OC + o] * x[i * IC + k] }
        XCTAssertEqual(dw[o * IC + k], s, accuracy: 1e-5)
      }
      var s: Float = 0
      for i in 0..<N { s += dout[i * OC + o] }
      XCTAssertEqual(db[o], s, accuracy: 1e-5)
    }
  }

  func testVectorisedAdamWMatchesTheScalarRule() {
    var rng = Rng(s: 15)
    let n = 8 * 600 + 5  // spans two 4096-element blocks and a scalar tail
    var o = AdamWConfig()
    o.learningRate = 1e-2; o.weightDecay = 0.1; o.beta1 = 0.8; o.beta2 = 0.95; o.eps = 1e-6
    let p = Buf(n, &rng), g = Buf(n, &rng), m = Buf(n, &rng, scale: 0.1), v = Buf(n, &rng, scale: 0.1)
    for i in 0..<n { v[i] = abs(v[i]) }
    let (p0, m0, v0) = (p.p.toArray(n), m.p.toArray(n), v.p.toArray(n))
    let (t, lr, scale): (Int, Float, Float) = (3, 1e-2, 0.5)
    let sums = adamWRange(p.p, g.p, m.p, v.p, n, AdamWConstants(o, lr: lr, t: t, gradScale: scale),
                          squares: true, stats: true)
    var (g2, du, w2) = (0.0, 0.0, 0.0)
    let b1c = 1 - pow(Double(o.beta1), Double(t)), b2c = 1 - pow(Double(o.beta2), Double(t))
    for i in 0..<n {
      let gr = Double(g[i]) * Double(scale)
      let mm = Double(o.beta1) * Double(m0[i]) + (1 - Double(o.beta1)) * gr
      let vv = Double(o.beta2) * Double(v0[i]) + (1 - Double(o.beta2)) * gr * gr
      let delta = Double(lr) * ((mm / b1c) / ((vv / b2c).squareRoot() + Double(o.eps)) + Double(o.weightDecay) * Double(p0[i]))
      XCTAssertEqual(Double(m[i]), mm, accuracy: 1e-6)
      XCTAssertEqual(Double(v[i]), vv, accuracy: 1e-6)
      XCTAssertEqual(Double(p[i]), Double(p0[i]) - delta, accuracy: 1e-6)
      g2 += gr * gr; du += delta * delta
      w2 += (Double(p0[i]) - delta) * (Double(p0[i]) - delta)
    }
    XCTAssertEqual(sums.g2, g2, accuracy: 1e-4 * g2)
    XCTAssertEqual(sums.du, du, accuracy: 1e-4 * du)
    XCTAssertEqual(sums.w2, w2, accuracy: 1e-4 * w2)
  }
}

extension UnsafeMutablePointer where Pointee == Float {
  fileprivate func toArray(_ n: Int) -> [Float] { Array(UnsafeBufferPointer(start: self, count: n)) }
}

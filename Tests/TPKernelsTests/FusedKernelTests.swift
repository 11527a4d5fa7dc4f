import XCTest
@testable import TPKernels

/// The fused kernels against the unfused reference kernels they replace.
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
}

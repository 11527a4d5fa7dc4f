import Foundation
import XCTest
@testable import TPEngine

/// The learning-rate schedule, and the vectorised AdamW against a scalar transcription of the
/// update rule.
final class OptimizerTests: XCTestCase {
  func testLearningRateSchedule() {
    var s = LRSchedule()
    XCTAssertEqual(s.rate(peak: 1, step: 7, total: 10), 1)
    s.kind = .cosine
    s.warmupSteps = 4
    s.minFraction = 0.1
    XCTAssertEqual(s.rate(peak: 1, step: 0, total: 104), 0.25, accuracy: 1e-6)
    XCTAssertEqual(s.rate(peak: 1, step: 3, total: 104), 1, accuracy: 1e-6)
    XCTAssertEqual(s.rate(peak: 1, step: 4, total: 104), 1, accuracy: 1e-6)
    XCTAssertEqual(s.rate(peak: 1, step: 54, total: 104), 0.55, accuracy: 1e-5)
    XCTAssertEqual(s.rate(peak: 1, step: 104, total: 104), 0.1, accuracy: 1e-6)
  }

  func testVectorisedAdamWMatchesTheScalarRule() {
    var seed: UInt64 = 15
    let n = 8 * 600 + 5  // spans two 4096-element blocks and a scalar tail
    var o = AdamWConfig()
    o.learningRate = 1e-2; o.weightDecay = 0.1; o.beta1 = 0.8; o.beta2 = 0.95; o.eps = 1e-6
    let p0 = randomFloats(n, &seed), g0 = randomFloats(n, &seed)
    let m0 = randomFloats(n, &seed, scale: 0.1), v0 = randomFloats(n, &seed, scale: 0.1).map(abs)
    let (p, g, m, v) = (buffer(p0), buffer(g0), buffer(m0), buffer(v0))
    defer { for b in [p, g, m, v] { b.deallocate() } }
    let (t, lr, scale): (Int, Float, Float) = (3, 1e-2, 0.5)
    let sums = adamWRange(p, g, m, v, n, AdamWConstants(o, lr: lr, t: t, gradScale: scale),
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

  /// n values in [−scale, scale] from a fixed linear congruential sequence.
  func randomFloats(_ n: Int, _ seed: inout UInt64, scale: Float = 1) -> [Float] {
    (0..<n).map { _ in
      seed = seed &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int64(bitPattern: seed >> 11) % 2_000_001 - 1_000_000) / 1_000_000 * scale
    }
  }

  /// A heap copy of `values` (deallocate it).
  func buffer(_ values: [Float]) -> UnsafeMutablePointer<Float> {
    let b = UnsafeMutablePointer<Float>.allocate(capacity: values.count)
    b.initialize(from: values, count: values.count)
    return b
  }
}

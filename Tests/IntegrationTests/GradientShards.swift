import XCTest

/// The gradient-shard comparison of the equivalence tests: a test model's sizes, each TP rank's
/// expected shard cut from the TP=1 gradient, and the element-wise tolerance.
protocol GradientShardChecks {
  var L: Int { get }
  var H: Int { get }
  var C: Int { get }
  var V: Int { get }
  var Vp: Int { get }
  var maxT: Int { get }
}

extension GradientShardChecks {
  /// The expected local shard of rank r of t, cut from the full gradient in llm.c order
  /// (written out tensor by tensor, independently of the engine's layout code).
  func expectedShard(full: [Float], rank r: Int, of t: Int) -> [Float] {
    var out: [Float] = []
    var offset = 0
    func take(_ count: Int) -> ArraySlice<Float> { defer { offset += count }; return full[offset..<(offset + count)] }
    let cl = C / t, fl = 4 * C / t, vl = Vp / t
    // wte (Vp, C): vocab rows
    let wte = Array(take(Vp * C)); out += wte[(r * vl * C)..<((r + 1) * vl * C)]
    out += take(maxT * C)  // wpe
    out += take(L * C); out += take(L * C)  // ln1w, ln1b
    let qkvw = Array(take(L * 3 * C * C))  // (L, 3C, C): q, k, v row blocks
    for l in 0..<L { for b in 0..<3 { let s = (l * 3 * C + b * C + r * cl) * C; out += qkvw[s..<(s + cl * C)] } }
    let qkvb = Array(take(L * 3 * C))
    for l in 0..<L { for b in 0..<3 { let s = l * 3 * C + b * C + r * cl; out += qkvb[s..<(s + cl)] } }
    let attprojw = Array(take(L * C * C))  // (L, C, C): input columns
    for l in 0..<L { for o in 0..<C { let s = (l * C + o) * C + r * cl; out += attprojw[s..<(s + cl)] } }
    out += take(L * C)  // attprojb
    out += take(L * C); out += take(L * C)  // ln2
    let fcw = Array(take(L * 4 * C * C))  // (L, 4C, C): rows
    for l in 0..<L { let s = (l * 4 * C + r * fl) * C; out += fcw[s..<(s + fl * C)] }
    let fcb = Array(take(L * 4 * C))
    for l in 0..<L { let s = l * 4 * C + r * fl; out += fcb[s..<(s + fl)] }
    let fcprojw = Array(take(L * C * 4 * C))  // (L, C, 4C): input columns
    for l in 0..<L { for o in 0..<C { let s = (l * C + o) * 4 * C + r * fl; out += fcprojw[s..<(s + fl)] } }
    out += take(L * C)  // fcprojb
    out += take(C); out += take(C)  // lnf
    XCTAssertEqual(offset, full.count, "full gradient size")
    return out
  }

  /// Gradient tolerance: |g − g_ref| ≤ 1e-5 + 1e-3·|g_ref| (fp32 sums in a different order).
  func assertClose(_ got: [Float], _ want: [Float], _ what: String) {
    XCTAssertEqual(got.count, want.count, "\(what): size")
    guard got.count == want.count else { return }
    var worst = 0
    var bad = 0
    for i in 0..<got.count {
      let tol = 1e-5 + 1e-3 * abs(want[i])
      if abs(got[i] - want[i]) > tol {
        bad += 1
        if abs(got[i] - want[i]) > abs(got[worst] - want[worst]) { worst = i }
      }
    }
    XCTAssertEqual(bad, 0, "\(what): \(bad) elements differ; worst at \(worst): \(got[worst]) vs \(want[worst])")
  }
}

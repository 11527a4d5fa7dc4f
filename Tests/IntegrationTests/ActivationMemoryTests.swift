import Foundation
import XCTest

/// The activation bytes a rank reports (`activation_bytes` in the --log line: its arena of
/// activations and backward scratch) against the formula of docs/MEMORY.md, and the savings of
/// sequence parallelism and each recomputation mode.
final class ActivationMemoryTests: XCTestCase {
  // the tiny preset: L2 H4 C64, padded vocab 256
  let (L, H, C, Vp) = (2, 4, 64, 256)
  let (B, T) = (4, 32)

  /// docs/MEMORY.md's formula, in floats: R = B·T (÷ t with sequence parallelism), Lk = layers
  /// of activations kept (1 under full recomputation), La = layers of attention probabilities
  /// kept (1 under any recomputation).
  func formulaBytes(t: Int, sp: Bool, recompute: String) -> Int {
    let BT = B * T
    let R = sp ? BT / t : BT
    let Lk = recompute == "full" ? 1 : L
    let La = recompute == "none" ? L : 1
    let rowFloats = R * C * (5 + 3 * Lk + L) + R * (4 * Lk + 2)
    let splitFloats = BT * (C / t) * (12 * Lk + 8) + La * B * (H / t) * T * T + BT * Vp / t + 4 * BT
    let sequenceFloats = sp ? 2 * BT * C : 0
    return 4 * (rowFloats + splitFloats + sequenceFloats)
  }

  /// `activation_bytes` of the log (world rank 0) after one step.
  func measuredBytes(t: Int, _ flags: [String], dir: URL) throws -> Int {
    let log = dir.appendingPathComponent("act-\(t)-\(flags.joined()).jsonl").path
    _ = try Harness.train(np: t, ["--model", "tiny", "--batch", "\(B)", "--seq", "\(T)", "--steps", "1", "--tp", "\(t)",
                                  "--log", log, "--quiet", "--no-telemetry"] + flags)
    let row = try XCTUnwrap(try Harness.readLog(log).first)
    return try XCTUnwrap(row["activation_bytes"] as? NSNumber).intValue
  }

  func testActivationBytesFollowTheFormulaAndShrinkWithEachFlag() throws {
    let dir = try Harness.tempDir(self)
    var measured: [String: Int] = [:]
    let cases: [(t: Int, sp: Bool, recompute: String)] = [
      (1, false, "none"), (2, false, "none"), (2, false, "selective"), (2, false, "full"),
      (2, true, "none"), (2, true, "full"), (4, true, "selective"),
    ]
    for c in cases {
      let flags = (c.sp ? ["--sequence-parallel"] : []) + ["--recompute", c.recompute]
      let bytes = try measuredBytes(t: c.t, flags, dir: dir)
      let want = formulaBytes(t: c.t, sp: c.sp, recompute: c.recompute)
      XCTAssertLessThanOrEqual(abs(Double(bytes - want)) / Double(want), 0.02, "t=\(c.t) \(flags): measured \(bytes) vs formula \(want)")
      measured["\(c.t)\(c.sp)\(c.recompute)"] = bytes
    }
    let plain = try XCTUnwrap(measured["2falsenone"])
    // selective keeps one layer of attention probabilities instead of L
    XCTAssertEqual(plain - measured["2falseselective"]!, 4 * (L - 1) * B * (H / 2) * T * T)
    // full keeps one working layer of everything but the layer inputs (residual3)
    let BT = B * T, perLayer = BT * C * 3 + BT * 4 + BT * (C / 2) * 12
    XCTAssertEqual(plain - measured["2falsefull"]!, 4 * (L - 1) * (perLayer + B * (H / 2) * T * T))
    // sequence parallelism: the (B·T, C) and (B·T) tensors outside the TP blocks shrink to
    // their half, and two (B·T, C) full-row buffers come in
    let rowTensors = BT * C * (5 + 4 * L) + BT * (4 * L + 2)
    XCTAssertEqual(plain - measured["2truenone"]!, 4 * (rowTensors / 2 - 2 * BT * C))
    XCTAssertLessThan(measured["2truefull"]!, measured["2falsefull"]!)
  }
}

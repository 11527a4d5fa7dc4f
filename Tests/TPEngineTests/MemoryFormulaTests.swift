import XCTest
@testable import TPEngine

/// `MemoryFormula.activationFloats` (what `tptrain --memory-report` prints beside the measured
/// bytes) equals the arena that `Activations.table` lays out, for every activation option.
final class MemoryFormulaTests: XCTestCase {
  func testActivationFormulaEqualsTheArenaTableForEveryOption() throws {
    let config = try GPTConfig.preset("small")
    for tp in [1, 2] {
      let local = try LocalShape(config: config, tp: tp, tpRank: 0)
      for sp in [false, true] {
        for mode in Recompute.allCases {
          let options = ActivationOptions(sequenceParallel: sp, recompute: mode)
          let table = Activations.table(config: config, local: local, B: 6, T: 64, options: options)
          XCTAssertEqual(MemoryFormula.activationFloats(config, batch: 6, seq: 64, tp: tp, options: options),
                         table.reduce(0) { $0 + $1.count }, "t=\(tp) sp=\(sp) recompute=\(mode)")
        }
      }
    }
  }
}

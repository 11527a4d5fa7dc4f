import XCTest
import JobSchema
import TPEngine

/// The shard layout covers every parameter element once at every TP size, and impossible splits
/// are refused with the numbers that make them impossible.
final class ShardLayoutTests: XCTestCase {
  func testShardLayoutCoversEveryElementOnce() throws {
    let small = try GPTConfig.preset("small")
    let odd = GPTConfig(maxSeqLen: 8, vocabSize: 300, paddedVocabSize: 384, numLayers: 2, numHeads: 6, channels: 48)
    for (c, t) in [(small, 1), (small, 2), (odd, 3), (odd, 6)] {
      let layout = ShardedTensor.gpt2Layout(c, tp: t)
      XCTAssertEqual(layout.count, 16)
      XCTAssertEqual(layout.reduce(0) { $0 + $1.globalCount }, c.parameterCount)
      for tensor in layout where tensor.split != .replicated {
        var seen = [Int](repeating: 0, count: tensor.globalCount)
        for r in 0..<t {
          var localTotal = 0
          tensor.forEachLocalRun(rank: r) { g, l, n in
            XCTAssertEqual(l, localTotal)
            localTotal += n
            for k in g..<(g + n) { seen[k] += 1 }
          }
          XCTAssertEqual(localTotal, tensor.localCount(tp: r))
        }
        XCTAssertTrue(seen.allSatisfy { $0 == 1 }, "\(tensor.name) at tp=\(t)")
      }
    }
  }

  /// The named tensors are the layout's, in llm.c order; the per-layer ones stack L layers.
  func testTheNamedTensorsAreTheLayoutsInOrder() throws {
    let c = try GPTConfig.preset("small")
    let layout = ShardedTensor.gpt2Layout(c, tp: 2)
    XCTAssertEqual(layout.map(\.name), GPT2Tensor.allCases.map(\.name))
    XCTAssertEqual(layout.map(\.name).prefix(5), ["wte", "wpe", "ln1w", "ln1b", "qkvw"])
    for t in GPT2Tensor.allCases {
      XCTAssertEqual(t.perLayer, layout[t.rawValue].shape.first == c.numLayers && t != .wpe, t.name)
    }
  }

  func testImpossibleSplitsNameTheNumbers() throws {
    let c = try GPTConfig.preset("small")  // H6, C384, Vp256
    let grid = try ParallelLayout(worldSize: 4, worldRank: 0, tp: 4, dp: nil)
    XCTAssertThrowsError(try grid.validate(c)) { e in
      let m = "\(e)"
      XCTAssertTrue(m.contains("heads 6 % tp 4"), m)
      XCTAssertTrue(m.contains("tp in {1, 2}"), m)
    }
    XCTAssertThrowsError(try ParallelLayout(worldSize: 3, worldRank: 0, tp: 2, dp: nil)) { e in
      XCTAssertEqual("\(e)", "world size 3 does not divide by --tp 2: start mpirun with -np a multiple of 2 (-np 2 for dp 1) or pick a --tp that divides 3")
    }
    XCTAssertThrowsError(try ParallelLayout(worldSize: 4, worldRank: 0, tp: 2, dp: 3)) { e in
      XCTAssertEqual("\(e)", "world size 4 is not tp × dp (tp 2, dp 3): start mpirun with -np 6 or pick --tp/--dp whose product is 4")
    }
    let ok = try ParallelLayout(worldSize: 6, worldRank: 5, tp: 2, dp: nil)
    XCTAssertEqual(ok.dp, 3)
    XCTAssertEqual(ok.tpRank, 1)
    XCTAssertEqual(ok.dpRank, 2)
  }
}

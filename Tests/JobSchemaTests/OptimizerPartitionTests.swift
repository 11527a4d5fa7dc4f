import JobSchema
import XCTest

/// The distributed optimizer's partition of a flat buffer among DP ranks.
final class OptimizerPartitionTests: XCTestCase {
  func testBlocksCoverTheBufferOnceWithLessThanOneElementPerRankOfPadding() {
    for (count, d) in [(10, 1), (10, 3), (12, 4), (7, 8), (120_576, 2), (1_000_003, 4)] {
      let parts = (0..<d).map { OptimizerPartition(count: count, shards: d, index: $0) }
      let padded = parts[0].paddedCount
      XCTAssertEqual(padded % d, 0)
      XCTAssertTrue(padded >= count && padded - count < d, "count \(count) d \(d): padded \(padded)")
      XCTAssertEqual(parts.map(\.shardCount), Array(repeating: padded / d, count: d))
      // blocks are contiguous and disjoint; their real ranges cover 0..<count once
      XCTAssertEqual(parts.map(\.block.lowerBound), (0..<d).map { $0 * padded / d })
      XCTAssertEqual(parts.map(\.range.count).reduce(0, +), count)
      XCTAssertEqual(parts.last!.range.upperBound, count)
    }
    let whole = OptimizerPartition(count: 10)
    XCTAssertEqual([whole.paddedCount, whole.shardCount], [10, 10])
    XCTAssertEqual(whole.range, 0..<10)
  }

  func testEachTensorsSlicesOverTheDPRanksCoverItOnce() {
    let sizes = [5, 17, 1, 30, 8]  // 61 elements, blocks of 16 at d = 4 (3 padding)
    let d = 4
    var start = 0
    for size in sizes {
      let slices = (0..<d).map { OptimizerPartition(count: 61, shards: d, index: $0).slice(ofTensorAt: start..<(start + size)) }
      var seen = [Int](repeating: 0, count: size)
      for (r, s) in slices.enumerated() {
        for i in s { seen[i] += 1 }
        // every element of the slice is in rank r's block
        if !s.isEmpty { XCTAssertTrue(r * 16 <= start + s.lowerBound && start + s.upperBound <= (r + 1) * 16) }
      }
      XCTAssertEqual(seen, Array(repeating: 1, count: size), "tensor at \(start)")
      start += size
    }
    XCTAssertEqual(OptimizerPartition(count: 61, shards: 4, index: 1).slice(ofTensorAt: 22..<52), 0..<10)
    XCTAssertEqual(OptimizerPartition(count: 61, shards: 4, index: 0).slice(ofTensorAt: 22..<52), 0..<0)
  }
}

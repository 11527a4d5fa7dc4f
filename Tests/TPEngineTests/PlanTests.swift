import JobSchema
import XCTest

@testable import TPEngine

/// The pure plans behind two overlapped paths, exercised until now only through mpirun
/// launches: the data-parallel gradient buckets and `--overlap-tp`'s row pieces.
final class PlanTests: XCTestCase {
  /// Local tensor sizes of TP rank `rank` of a GPT-2 of `layers` layers (llm.c's order).
  func localSizes(layers: Int, channels: Int = 64, heads: Int = 4, tp: Int, rank: Int) -> [Int] {
    ShardedTensor.gpt2Layout(layers: layers, heads: heads, channels: channels, paddedVocab: 128, maxSeq: 32, tp: tp)
      .map { $0.localCount(tp: rank) }
  }

  /// Every gradient element is in exactly one segment, whatever the bucket size; each bucket
  /// but the last holds at least `bucketBytes`; buckets start in the backward's order (the LM
  /// head and final layer norm first, the embeddings last), at ready points that only grow.
  func testGradientBucketsCoverTheBufferOnceInBackwardOrder() {
    for (layers, tp, rank) in [(1, 1, 0), (2, 2, 1), (4, 4, 3), (3, 2, 0)] {
      let sizes = localSizes(layers: layers, tp: tp, rank: rank)
      let total = sizes.reduce(0, +)
      for bucketBytes in [1, 4096, 64 << 10, 1 << 30] {
        let plan = GradientBuckets.plan(localSizes: sizes, layers: layers, bucketBytes: bucketBytes)
        let what = "L=\(layers) t=\(tp) rank \(rank), \(bucketBytes) B"
        var covered = [Int](repeating: 0, count: total)
        for r in plan.ranges { for i in r { covered[i] += 1 } }
        XCTAssertEqual(covered.filter { $0 != 1 }.count, 0, "every element once: \(what)")
        XCTAssertEqual(plan.points.count, GradientBuckets.readyPoints(layers: layers))
        XCTAssertEqual(plan.bucketStarts.first, 0)
        XCTAssertEqual(plan.bucketStarts.last, plan.ranges.count, what)
        XCTAssertEqual(plan.bucketStarts.count, plan.bucketReadyPoint.count + 1)
        XCTAssertEqual(plan.bucketReadyPoint, plan.bucketReadyPoint.sorted(), "ready points only grow: \(what)")
        XCTAssertEqual(Set(plan.bucketReadyPoint).count, plan.bucketReadyPoint.count, "one bucket per ready point at most")
        XCTAssertEqual(plan.bucketReadyPoint.last, layers + 1, "the embeddings finish the last bucket: \(what)")
        for b in 0..<(plan.bucketStarts.count - 2) {
          let bytes = plan.ranges[plan.bucketStarts[b]..<plan.bucketStarts[b + 1]].reduce(0) { $0 + 4 * $1.count }
          XCTAssertGreaterThanOrEqual(bytes, bucketBytes, "bucket \(b) of \(what)")
        }
        // the first ready point is the final layer norm and the last layer's MLP-projection bias
        let first = plan.points[0].map(\.tensor)
        XCTAssertEqual(first, [GPT2Tensor.lnfw.rawValue, GPT2Tensor.lnfb.rawValue, GPT2Tensor.fcprojb.rawValue])
        XCTAssertEqual(plan.points.last!.map(\.tensor), [GPT2Tensor.wte.rawValue, GPT2Tensor.wpe.rawValue])
      }
      // one byte: a bucket per ready point; a gigabyte: one bucket for the whole buffer
      XCTAssertEqual(GradientBuckets.plan(localSizes: sizes, layers: layers, bucketBytes: 1).bucketReadyPoint,
                     Array(0...(layers + 1)))
      XCTAssertEqual(GradientBuckets.plan(localSizes: sizes, layers: layers, bucketBytes: 1 << 30).bucketReadyPoint, [layers + 1])
    }
  }

  /// Layer l's pieces are finished at ready point L - l, except its MLP-projection bias, which
  /// the backward of layer l + 1 (or the LM head, for the last layer) finishes one point early.
  func testEachLayersGradientsAreReadyWhenItsBackwardEnds() {
    let layers = 3
    let sizes = localSizes(layers: layers, tp: 2, rank: 0)
    var offsets = [0]
    for s in sizes { offsets.append(offsets.last! + s) }
    let plan = GradientBuckets.plan(localSizes: sizes, layers: layers, bucketBytes: 1)
    for (point, pieces) in plan.points.enumerated() {
      for piece in pieces where GPT2Tensor(rawValue: piece.tensor)!.perLayer {
        let per = sizes[piece.tensor] / layers
        let layer = (piece.range.lowerBound - offsets[piece.tensor]) / per
        let expected = piece.tensor == GPT2Tensor.fcprojb.rawValue ? layers - 1 - layer : layers - layer
        XCTAssertEqual(point, expected, "tensor \(piece.tensor) of layer \(layer)")
      }
    }
  }

  /// `--overlap-tp`'s row pieces: at most the pieces asked for, each at least 64 rows, inner
  /// starts on multiples of 64 (OpenBLAS's AVX-512 kernels give the same sums there), from 0 to
  /// the last row, strictly increasing; one piece when the rows are too few.
  func testOverlapPiecesAreAlignedIncreasingAndCoverTheRows() {
    XCTAssertEqual(TensorParallelOverlap.pieces(256, 4), [0, 64, 128, 192, 256])
    XCTAssertEqual(TensorParallelOverlap.pieces(1000, 3), [0, 320, 640, 1000])
    XCTAssertEqual(TensorParallelOverlap.pieces(100, 4), [0, 100], "fewer than 128 rows: one piece")
    XCTAssertEqual(TensorParallelOverlap.pieces(2048, 1), [0, 2048])
    for rows in [1, 63, 64, 65, 127, 128, 200, 512, 777, 2048, 4096, 8192] {
      for count in [1, 2, 3, 4, 7, 8, 16, 64, 256] {
        let p = TensorParallelOverlap.pieces(rows, count)
        let what = "\(rows) rows in \(count)"
        XCTAssertEqual(p.first, 0, what)
        XCTAssertEqual(p.last, rows, what)
        XCTAssertLessThanOrEqual(p.count - 1, count, what)
        XCTAssertEqual(p.count - 1, TensorParallelOverlap.pieceCount(rows, count), what)
        XCTAssertTrue(zip(p, p.dropFirst()).allSatisfy { $0 < $1 }, "increasing: \(what) → \(p)")
        XCTAssertTrue(p.dropFirst().dropLast().allSatisfy { $0 % TensorParallelOverlap.rowAlignment == 0 }, "aligned: \(what) → \(p)")
        if p.count > 2 {
          XCTAssertTrue(zip(p, p.dropFirst()).allSatisfy { $1 - $0 >= TensorParallelOverlap.rowAlignment / 2 },
                        "no sliver: \(what) → \(p)")
        }
      }
    }
  }
}

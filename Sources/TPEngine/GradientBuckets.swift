// Data-parallel gradient reduction overlapped with the backward pass (`--overlap-grad-reduce`).
//
// The gradient buffer keeps llm.c's tensor order (a layer's gradients are slices of twelve
// tensors), so a bucket is a list of segments of that buffer. The backward pass finishes them in
// `readyPoints` order: after the LM head and the final LayerNorm (lnf, the last layer's MLP
// projection bias), after each layer from the last to the first (its slices of the per-layer
// tensors, and the MLP projection bias of the layer below, whose gradient that layer's
// LayerNorm backward produces), and after the embeddings (wte, which the LM head and the
// embedding both write, and wpe). Consecutive ready points are packed into buckets of at least
// `bucketBytes`; when the backward passes a bucket's last ready point, the bucket's segments
// start their non-blocking reductions, which `progress()` (called between the backward's
// kernels) drives; the trainer waits for all of them before the optimizer.
//
// Every segment is reduced with `RangeReduction`, in the order of one all-reduce of the whole
// buffer (see NonBlocking.swift), so the result is bitwise that of the non-overlapped path.
// A bucket's reduction could be a reduce-scatter for a distributed optimizer: `kind`.

import TPComm
import TPKernels

/// The gradient buckets of one rank and their in-flight reductions over the DP group.
final class GradientBuckets {
  /// One contiguous piece of the gradient buffer, with its reduction.
  struct Segment {
    let range: Range<Int>
    let reduction: RangeReduction
  }

  /// The segments, bucket by bucket in the order the backward finishes them.
  let segments: [Segment]
  /// Bucket b is `segments[bucketStarts[b] ..< bucketStarts[b + 1]]`.
  let bucketStarts: [Int]
  /// Bucket b starts once the backward has passed ready point `bucketReadyPoint[b]`.
  let bucketReadyPoint: [Int]
  /// What each bucket's reduction leaves (all-reduce; a distributed optimizer would reduce-scatter).
  var kind = RangeReductionKind.allReduce
  private let grads: FloatPtr
  private let count: Int
  /// The next bucket to start, and the first one not yet seen complete.
  private var nextBucket = 0
  private var firstPending = 0

  /// Ready points: 0 after the LM head and lnf, 1 + k after layer L-1-k, L + 1 after the
  /// embeddings.
  static func readyPoints(layers L: Int) -> Int { L + 2 }

  /// Buckets of at least `bucketBytes` over `model`'s gradient buffer, reduced over `dpGroup`.
  init(model: GPT, dpGroup: Communicator, bucketBytes: Int) {
    let L = model.config.numLayers
    var offsets = [0]
    for s in model.localSizes { offsets.append(offsets.last! + s) }
    func slice(_ tensor: Int, _ l: Int) -> Range<Int> {
      let per = model.localSizes[tensor] / L
      return (offsets[tensor] + l * per)..<(offsets[tensor] + (l + 1) * per)
    }
    func whole(_ tensor: Int) -> Range<Int> { offsets[tensor]..<offsets[tensor + 1] }
    // llm.c tensor indices: 0 wte, 1 wpe, 2…13 per-layer (ln1w … fcprojb), 14 lnfw, 15 lnfb
    let fcprojb = 13
    var points: [[Range<Int>]] = [[whole(14), whole(15), slice(fcprojb, L - 1)]]
    for l in stride(from: L - 1, through: 0, by: -1) {
      points.append((2..<fcprojb).map { slice($0, l) } + (l > 0 ? [slice(fcprojb, l - 1)] : []))
    }
    points.append([whole(0), whole(1)])
    var ranges: [Range<Int>] = [], starts = [0], readyAt: [Int] = []
    var bytes = 0
    for (point, pieces) in points.enumerated() {
      for r in pieces where !r.isEmpty { ranges.append(r); bytes += 4 * r.count }
      if bytes >= bucketBytes || point == points.count - 1 {
        if ranges.count > starts.last! { starts.append(ranges.count); readyAt.append(point) }
        bytes = 0
      }
    }
    let n = model.numLocalParameters
    // one tag per segment: every segment of a bucket is in flight at once
    segments = ranges.enumerated().map { i, r in
      Segment(range: r, reduction: RangeReduction(comm: dpGroup, tag: 7100 + Int32(i), count: n, range: r))
    }
    bucketStarts = starts
    bucketReadyPoint = readyAt
    grads = model.gradsMemory
    count = n
  }

  /// Buckets in this plan.
  var bucketCount: Int { bucketReadyPoint.count }

  /// The backward has passed ready point `point`: starts every bucket that is now complete,
  /// then drives those in flight.
  @inline(__always)
  func ready(_ point: Int) {
    while nextBucket < bucketCount && bucketReadyPoint[nextBucket] <= point {
      for s in bucketStarts[nextBucket]..<bucketStarts[nextBucket + 1] { segments[s].reduction.start(grads, kind) }
      nextBucket += 1
    }
    progress()
  }

  /// Drives the reductions in flight (between the backward's kernels).
  @inline(__always)
  func progress() {
    while firstPending < nextBucket {
      var done = true
      for s in bucketStarts[firstPending]..<bucketStarts[firstPending + 1] where !segments[s].reduction.progress() {
        done = false
      }
      if !done { break }
      firstPending += 1
    }
    // later buckets progress too, even while an earlier one waits for a peer
    if firstPending < nextBucket {
      for s in bucketStarts[firstPending + 1]..<bucketStarts[nextBucket] { segments[s].reduction.progress() }
    }
  }

  /// Starts whatever the backward has not (all of it when the backward ran without this
  /// object), waits for every reduction, and resets for the next step.
  func finish() {
    ready(Int.max)
    for s in segments { s.reduction.wait() }
    nextBucket = 0
    firstPending = 0
  }
}

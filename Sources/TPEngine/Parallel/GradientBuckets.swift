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
//
// Under the distributed optimizer the whole buffer is the padded one (`partition.paddedCount`
// = d · block), so the ring's chunks are the optimizer's blocks and a segment reduced with
// `.reduceScatter` leaves this rank's block summed in the order of the plain path's ring
// reduce-scatter (the padding is in no segment: it stays zero, as the plain sum of zeros
// leaves it). With `--collectives mpi` a segment is reduce-scattered by `MPI_Ireduce_scatter`
// into the blocks it overlaps: bitwise the plain `MPI_Reduce_scatter_block` over two ranks,
// where a sum of two is the same in any order.
//
// Under sequence parallelism each replicated gradient (wpe, the LayerNorms, the row-parallel
// biases) holds only this TP rank's part until it is summed over TP, which the plain path does
// after the backward, one all-reduce per run of replicated tensors (`GPT.replicatedRuns`).
// Here each ready point's replicated slices start their TP sums as soon as the backward passes
// it (about 6·C floats per layer), each with a `RangeReduction` over its run, so in the order of
// that run's all-reduce; they progress between the backward's kernels like the buckets, and a
// bucket starts its DP reduction once the TP sums of every slice up to its ready point are
// complete. The DP reduction so sees bitwise the plain path's TP sums, nothing waits before the
// end of the backward, and the backward leaves the TP sums to this object.
//
// Every start happens at a fixed point of the backward on every rank of a group (TP sums in
// `ready`, buckets in bucket order), so the `mpi` forms' non-blocking collectives are issued in
// the same order everywhere, whenever each rank gets to them.

import JobSchema
import TPComm
import TPKernels

/// The gradient buckets of one rank and their in-flight reductions over the DP group (and, under
/// sequence parallelism, the TP sums of the replicated slices that must come first).
final class GradientBuckets {
  /// One contiguous piece of the gradient buffer, with its reduction.
  struct Segment {
    let range: Range<Int>
    let reduction: RangeReduction
  }

  /// One replicated slice's TP sum under sequence parallelism: `reduction` runs over the run of
  /// replicated tensors that starts at `run` (offset into the gradient buffer).
  struct ReplicatedSlice {
    let run: Int
    let reduction: RangeReduction
  }

  /// The segments, bucket by bucket in the order the backward finishes them.
  let segments: [Segment]
  /// Bucket b is `segments[bucketStarts[b] ..< bucketStarts[b + 1]]`.
  let bucketStarts: [Int]
  /// Bucket b starts once the backward has passed ready point `bucketReadyPoint[b]`.
  let bucketReadyPoint: [Int]
  /// What each bucket's reduction leaves: `.reduceScatter` under the distributed optimizer on
  /// the ring (this rank's block summed), `.allReduce` otherwise.
  let kind: RangeReductionKind
  /// Under sequence parallelism over t > 1: the replicated slices that ready point p finishes
  /// are `replicated[replicatedStarts[p] ..< replicatedStarts[p + 1]]`; empty otherwise.
  let replicated: [ReplicatedSlice]
  let replicatedStarts: [Int]
  /// Whether this object sums the replicated gradients over TP (the backward then does not).
  var sumsReplicatedGradients: Bool { !replicated.isEmpty }
  private let grads: FloatPtr
  private let count: Int
  /// The next bucket to start, and the first one not yet seen complete.
  private var nextBucket = 0
  private var firstPending = 0
  /// The last ready point the backward has passed (-1 before the first).
  private var readyThrough = -1
  /// The first ready point whose replicated slices' TP sums are not yet started.
  private var nextSummedPoint = 0
  /// The first replicated slice whose TP sum is not yet seen complete.
  private var firstUnsummed = 0

  /// Ready points: 0 after the LM head and lnf, 1 + k after layer L-1-k, L + 1 after the
  /// embeddings.
  static func readyPoints(layers L: Int) -> Int { L + 2 }

  /// A piece of one tensor's gradient: its index in the layout and its elements in the buffer.
  typealias Piece = (tensor: Int, range: Range<Int>)

  /// Where the buckets lie, from the shapes alone: the pieces each ready point finishes, in the
  /// backward's order, and the segments (each piece's range) packed into buckets of at least
  /// `bucketBytes` over consecutive ready points (the last bucket takes what is left).
  struct Plan {
    var points: [[Piece]]
    var ranges: [Range<Int>]
    /// Bucket b is `ranges[bucketStarts[b] ..< bucketStarts[b + 1]]`.
    var bucketStarts: [Int]
    var bucketReadyPoint: [Int]
  }

  /// The plan for a rank whose tensors (llm.c's order) hold `localSizes` elements, `layers` deep.
  static func plan(localSizes: [Int], layers L: Int, bucketBytes: Int) -> Plan {
    var offsets = [0]
    for s in localSizes { offsets.append(offsets.last! + s) }
    func slice(_ t: GPT2Tensor, _ l: Int) -> Piece {
      let (tensor, per) = (t.rawValue, localSizes[t.rawValue] / L)
      return (tensor, (offsets[tensor] + l * per)..<(offsets[tensor] + (l + 1) * per))
    }
    func whole(_ t: GPT2Tensor) -> Piece { (t.rawValue, offsets[t.rawValue]..<offsets[t.rawValue + 1]) }
    // the layer tensors but the MLP projection's bias, whose gradient the next layer's backward
    // finishes (the residual stream's gradient)
    let layerTensors = GPT2Tensor.allCases.filter { $0.perLayer && $0 != .fcprojb }
    var points: [[Piece]] = [[whole(.lnfw), whole(.lnfb), slice(.fcprojb, L - 1)]]
    for l in stride(from: L - 1, through: 0, by: -1) {
      points.append(layerTensors.map { slice($0, l) } + (l > 0 ? [slice(.fcprojb, l - 1)] : []))
    }
    points.append([whole(.wte), whole(.wpe)])
    precondition(points.count == Self.readyPoints(layers: L))
    var ranges: [Range<Int>] = [], starts = [0], readyAt: [Int] = []
    var bytes = 0
    for (point, pieces) in points.enumerated() {
      for piece in pieces where !piece.range.isEmpty { ranges.append(piece.range); bytes += 4 * piece.range.count }
      if bytes >= bucketBytes || point == points.count - 1 {
        if ranges.count > starts.last! { starts.append(ranges.count); readyAt.append(point) }
        bytes = 0
      }
    }
    return Plan(points: points, ranges: ranges, bucketStarts: starts, bucketReadyPoint: readyAt)
  }

  /// Buckets of at least `bucketBytes` over `model`'s gradient buffer, reduced over `dpGroup`
  /// (reduce-scattered into the optimizer's blocks when `model.partition` is split over it);
  /// under sequence parallelism the replicated slices are first summed over `tpGroup`.
  /// The reductions run on duplicates of the groups (collective: every rank builds this object
  /// at the same point), so no tag of theirs can meet another subsystem's messages.
  init(model: GPT, dpGroup: Communicator, tpGroup: Communicator, bucketBytes: Int) throws {
    let plan = Self.plan(localSizes: model.localSizes, layers: model.config.numLayers, bucketBytes: bucketBytes)
    let (points, ranges, starts, readyAt) = (plan.points, plan.ranges, plan.bucketStarts, plan.bucketReadyPoint)
    // the plain path reduces the whole (padded) buffer: its ring chunks fix the order, and under
    // the distributed optimizer they are the blocks (paddedCount is numLocalParameters otherwise)
    let n = model.partition.paddedCount
    kind = model.parallel.distributedOptimizer ? .reduceScatter : .allReduce
    // one tag per segment (reserved on the buckets' own duplicate): every segment of a bucket is
    // in flight at once
    let buckets = try dpGroup.duplicate(for: .gradientBuckets)
    segments = ranges.map { Segment(range: $0, reduction: RangeReduction(comm: buckets, count: n, range: $0)) }
    bucketStarts = starts
    bucketReadyPoint = readyAt
    // sequence parallelism: each replicated piece lies in one run of replicated tensors, whose
    // all-reduce is the plain path's; its slice is reduced in that run's order
    var slices: [ReplicatedSlice] = [], sliceStarts = [0]
    if model.activationOptions.sequenceParallel && model.parallel.tp > 1 {
      let sums = try tpGroup.duplicate(for: .replicatedGradientSums)
      for pieces in points {
        for piece in pieces where model.replicatedMask[piece.tensor] && !piece.range.isEmpty {
          guard let run = model.replicatedRuns.first(where: {
            $0.offset <= piece.range.lowerBound && piece.range.upperBound <= $0.offset + $0.count
          }) else { preconditionFailure("a replicated gradient outside the replicated runs") }
          let relative = (piece.range.lowerBound - run.offset)..<(piece.range.upperBound - run.offset)
          // one tag per slice: the slices of several ready points can be in flight at once
          slices.append(ReplicatedSlice(run: run.offset, reduction: RangeReduction(
            comm: sums, count: run.count, range: relative)))
        }
        sliceStarts.append(slices.count)
      }
    }
    replicated = slices
    replicatedStarts = sliceStarts
    grads = model.gradsMemory
    count = n
  }

  /// Buckets in this plan.
  var bucketCount: Int { bucketReadyPoint.count }

  /// The backward has passed ready point `point`: starts the TP sums of its replicated slices
  /// (under sequence parallelism), then drives everything in flight, which starts each bucket
  /// that is now complete.
  @inline(__always)
  func ready(_ point: Int) {
    readyThrough = max(readyThrough, point)
    startReplicatedSums(through: point)
    progress()
  }

  /// Starts the TP sums of the replicated slices of every ready point up to `point` not yet
  /// started.
  private func startReplicatedSums(through point: Int) {
    if replicated.isEmpty { return }
    let last = min(point, replicatedStarts.count - 2)
    if last < nextSummedPoint { return }
    for i in replicatedStarts[nextSummedPoint]..<replicatedStarts[last + 1] {
      replicated[i].reduction.start(grads + replicated[i].run)
    }
    nextSummedPoint = last + 1
  }

  /// Whether the TP sums of the replicated slices of every ready point up to `point` are
  /// complete (always, without sequence parallelism).
  @inline(__always)
  private func replicatedSummed(through point: Int) -> Bool {
    replicated.isEmpty || replicatedStarts[min(point, replicatedStarts.count - 2) + 1] <= firstUnsummed
  }

  /// Drives the reductions in flight (between the backward's kernels): the TP sums, then the
  /// buckets, starting each due bucket whose TP sums are complete.
  @inline(__always)
  func progress() {
    if !replicated.isEmpty {
      let started = replicatedStarts[nextSummedPoint]
      while firstUnsummed < started && replicated[firstUnsummed].reduction.progress() { firstUnsummed += 1 }
      if firstUnsummed + 1 < started {
        for i in firstUnsummed + 1..<started { replicated[i].reduction.progress() }
      }
    }
    while nextBucket < bucketCount && bucketReadyPoint[nextBucket] <= readyThrough
      && replicatedSummed(through: bucketReadyPoint[nextBucket]) {
      for s in bucketStarts[nextBucket]..<bucketStarts[nextBucket + 1] { segments[s].reduction.start(grads, kind) }
      nextBucket += 1
    }
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

  /// Starts whatever the backward has not, waits for every reduction, and resets for the next
  /// step. Under sequence parallelism the backward must have run with this object (its
  /// replicated gradients are summed over TP here, not there).
  func finish() {
    ready(Int.max)
    // the last buckets start as their TP sums complete: wait for those one by one (a wait
    // sleeps after a short spin), starting and driving the buckets between them
    while nextBucket < bucketCount {
      if firstUnsummed < replicated.count { replicated[firstUnsummed].reduction.wait() }
      progress()
    }
    for s in segments { s.reduction.wait() }
    nextBucket = 0
    firstPending = 0
    readyThrough = -1
    nextSummedPoint = 0
    firstUnsummed = 0
  }
}

// Tensor-parallel communication overlapped with the GEMMs (`--overlap-tp`), as in Megatron's TP
// communication overlap: each collective of a parallel linear is split into pieces along the
// token rows (or the weight gradient's output features) and pipelined with the GEMM that
// produces or consumes it, the pieces' transfers driven (`MPI_Test`) between the piece GEMMs.
//
// Without sequence parallelism:
//   row-parallel forward     GEMM of row chunk i+1 while chunk i's all-reduce (g) is in flight
//   column-parallel backward input gradient by row chunks, each chunk's all-reduce (f backward)
//                            started at once; the weight gradient, by blocks of output
//                            features, runs while they finish
// With sequence parallelism (every rank holds N/t of the N token rows outside the blocks):
//   column-parallel forward  all-gather of the input rows by ring steps; the GEMM runs on this
//                            rank's rows first, then on each rank's rows as they arrive
//   column-parallel backward the input rows gathered again while the input gradient's row
//                            chunks are computed and their reduce-scatters started; the weight
//                            gradient (which needs every row) runs while those finish
//   row-parallel forward     GEMM of row chunk i+1 while chunk i's reduce-scatter is in flight
//   row-parallel backward    all-gather of the output gradient's rows; the input gradient runs
//                            on each rank's rows as they arrive, the weight gradient after
// (The embedding's reduce-scatter and its backward all-gather are not chunked.)
//
// Bitwise: a reduction over a range of rows runs in the order of one ring reduction of the whole
// buffer (`RangeReduction`), and an all-gather only copies. A GEMM piece computes every output
// element with the same sums as the whole GEMM where OpenBLAS's kernels do not round a row by
// its place in the call: its AVX-512 kernels, for pieces at multiples of `rowAlignment`. There
// every result is bitwise that of the non-overlapped path (with `--collectives mpi`, over two
// ranks); its AVX2 kernels round by place, and the results agree to the last bits
// (BENCHMARKS.md, `scripts/gemm_pieces.c`; the equivalence tests check both).

import TPComm
import TPKernels

/// The row pieces and in-flight collectives of `--overlap-tp` for one rank's layers, whose
/// tensor-parallel collectives all move (N, C) activations (C = `columns`, N = `rows`).
final class TensorParallelOverlap {
  /// This object's duplicate of the TP group (`MessageSpace.tensorParallelOverlap`).
  let group: Communicator
  /// Chunk i covers rows `rowStarts[i] ..< rowStarts[i + 1]` of the N rows.
  let rowStarts: [Int]
  /// One reduction per row chunk of an (N, C) buffer, all in flight together (each has its own
  /// tag on `group`): all-reduces, or with sequence parallelism reduce-scatters.
  let reductions: [RangeReduction]
  /// Sequence parallelism: the full-row buffers, the all-gather of every rank's N/t rows of an
  /// (N, C) buffer, and the GEMM pieces each rank's block of rows is computed in.
  let sequence: SequenceParallelBuffers?
  let gather: RangeReduction?
  /// Sequence parallelism: the pieces of each rank's block of N/t rows (starts relative to the
  /// block, ending with N/t) that the GEMMs on gathered rows run in.
  let blockPieces: [Int]
  let columns: Int

  /// `group` is the TP group; the reductions run on a duplicate of it (collective: every TP rank
  /// builds this object at the same point).
  init(group tpGroup: Communicator, rows: Int, columns: Int, chunks: Int, sequence: SequenceParallelBuffers?) throws {
    let group = try tpGroup.duplicate(for: .tensorParallelOverlap)
    self.group = group
    self.columns = columns
    self.sequence = sequence
    let starts = Self.pieces(rows, chunks)
    rowStarts = starts
    let n = rows * columns
    reductions = (0..<(starts.count - 1)).map { i in
      RangeReduction(comm: group, count: n, range: (starts[i] * columns)..<(starts[i + 1] * columns))
    }
    gather = sequence == nil ? nil : RangeReduction(comm: group, count: n, range: 0..<n, gatherOnly: true)
    blockPieces = Self.pieces(rows / group.size, max(1, chunks / group.size))
  }

  /// GEMM pieces (of rows, or of a weight gradient's output features) start at multiples of
  /// this. OpenBLAS's AVX-512 kernels give a row the same sums wherever it lies in a call only
  /// when the pieces are not small: on this machine's OpenBLAS 0.3.21 a product split into
  /// pieces of 4–56 rows or features (or leaving such a tail) can differ in the last bit, while
  /// pieces at multiples of 64 matched the whole product for every GPT shape tried, on one
  /// thread and on two (BENCHMARKS.md).
  static let rowAlignment = 64

  /// How many pieces `rows` rows are cut into when `count` are asked for: at most `count`, each
  /// at least `rowAlignment` rows (one when rows are too few).
  @inline(__always)
  static func pieceCount(_ rows: Int, _ count: Int) -> Int { max(1, min(count, rows / rowAlignment)) }

  /// Start of piece `i` of `k` = `pieceCount(rows, …)` (`rows` for i = k): the even split rounded
  /// to a multiple of `rowAlignment`. Strictly increasing, since the pieces are ≥ 64 rows.
  @inline(__always)
  static func pieceStart(_ rows: Int, _ k: Int, _ i: Int) -> Int {
    i == k ? rows : (rows * i / k + rowAlignment / 2) / rowAlignment * rowAlignment
  }

  /// Starts of the pieces of `rows` rows, ending with `rows`.
  static func pieces(_ rows: Int, _ count: Int) -> [Int] {
    let k = pieceCount(rows, count)
    return (0...k).map { pieceStart(rows, k, $0) }
  }

  private var kind: RangeReductionKind { sequence == nil ? .allReduce : .reduceScatter }

  @inline(__always)
  private func progressAll(_ started: Int) {
    gather?.progress()
    for j in 0..<started { reductions[j].progress() }
  }

  @inline(__always)
  private func waitAll() {
    for r in reductions { r.wait() }
  }

  /// Rows of rank `block`'s share of the N rows: piece `i` of `blockPieces`.
  @inline(__always)
  private func piece(_ block: Int, _ i: Int, _ N: Int) -> Range<Int> {
    let base = block * (N / group.size)
    return (base + blockPieces[i])..<(base + blockPieces[i + 1])
  }

  /// Starts the all-gather of this rank's `slice` (N/t rows of C) into the full-row `full`.
  @inline(__always)
  private func startGather(_ full: FloatPtr, _ slice: FloatPtr, _ N: Int) {
    let n = N / group.size * columns
    (full + group.rank * n).update(from: slice, count: n)
    gather!.start(full, .allGather)
  }

  /// Runs `body` on every rank's rows of a gathered buffer, this rank's first and each other
  /// one's as the ring brings it, a piece at a time with the transfers driven in between.
  @inline(__always)
  private func forEachGatheredPiece(_ N: Int, _ body: (Range<Int>) -> Void) {
    let t = group.size
    for k in 0..<t {
      let block = (group.rank - k + t) % t
      gather!.wait(forChunk: block)
      for i in 0..<(blockPieces.count - 1) {
        body(piece(block, i, N))
        gather!.progress()
      }
    }
    gather!.wait()
  }

  /// `ColumnParallelLinear.forward` under sequence parallelism: out (N,OC) = (the N rows of
  /// inp, gathered from every rank's N/t) · weight (OC,IC)ᵀ + bias, the gather pipelined.
  @inline(__always)
  func columnParallelForward(_ out: FloatPtr, _ inp: FloatPtr, _ weight: FloatPtr, _ bias: FloatPtr?,
                             _ N: Int, _ IC: Int, _ OC: Int, pool: WorkerPool) {
    precondition(IC == columns && N == rowStarts.last!, "TP overlap planned for (\(rowStarts.last!), \(columns)) inputs")
    let x = sequence!.gathered
    startGather(x, inp, N)
    forEachGatheredPiece(N) { rows in
      matmulForward(out + rows.lowerBound * OC, x + rows.lowerBound * IC, weight, bias, rows.count, IC, OC, pool: pool)
    }
  }

  /// `ColumnParallelLinear.backward` overlapped: the input gradient by row chunks, each
  /// chunk's all-reduce (sequence parallelism: reduce-scatter onto this rank's rows) started as
  /// it is written, and the weight gradient by blocks of output features while they finish.
  /// Under sequence parallelism inp is this rank's rows, gathered again meanwhile.
  @inline(__always)
  func columnParallelBackward(_ dinp: FloatPtr, _ dweight: FloatPtr, _ dbias: FloatPtr?, _ dout: FloatPtr,
                              _ inp: FloatPtr, _ weight: FloatPtr, _ N: Int, _ IC: Int, _ OC: Int, pool: WorkerPool) {
    precondition(IC == columns && N == rowStarts.last!, "TP overlap planned for (\(rowStarts.last!), \(columns)) inputs")
    var x = inp, dx = dinp
    if let sequence {
      x = sequence.gathered
      dx = sequence.partial
      startGather(x, inp, N)
    }
    for i in 0..<reductions.count {
      let r0 = rowStarts[i], rows = rowStarts[i + 1] - r0
      matmulBackwardInput(dx + r0 * IC, dout + r0 * OC, weight, rows, IC, OC, pool: pool)
      reductions[i].start(dx, kind)
      progressAll(i + 1)
    }
    gather?.wait()
    let k = reductions.count
    let pieces = Self.pieceCount(OC, k)
    for i in 0..<pieces {
      matmulBackwardWeight(dweight, dout, x, N, IC, OC,
                           features: Self.pieceStart(OC, pieces, i)..<Self.pieceStart(OC, pieces, i + 1), pool: pool)
      progressAll(k)
    }
    if let dbias { biasBackward(dbias, dout, N, OC, pool: pool) }
    waitAll()
    if sequence != nil {
      let n = N / group.size * IC
      dinp.update(from: dx + group.rank * n, count: n)
    }
  }

  /// `RowParallelLinear.forward` overlapped: out (N,OC) = inp (N,IC) · weight (OC,IC)ᵀ summed
  /// over the TP group, chunk by chunk (sequence parallelism: out is this rank's N/t rows of
  /// the sum, reduce-scattered from the full-row partial products).
  @inline(__always)
  func rowParallelForward(_ out: FloatPtr, _ inp: FloatPtr, _ weight: FloatPtr, _ N: Int, _ IC: Int, _ OC: Int,
                          pool: WorkerPool) {
    precondition(OC == columns && N == rowStarts.last!, "TP overlap planned for (\(rowStarts.last!), \(columns)) outputs")
    let y = sequence?.partial ?? out
    for i in 0..<reductions.count {
      let r0 = rowStarts[i], rows = rowStarts[i + 1] - r0
      matmulForward(y + r0 * OC, inp + r0 * IC, weight, nil, rows, IC, OC, pool: pool)
      reductions[i].start(y, kind)
      progressAll(i + 1)
    }
    waitAll()
    if sequence != nil {
      let n = N / group.size * OC
      out.update(from: y + group.rank * n, count: n)
    }
  }

  /// `RowParallelLinear.backward` under sequence parallelism: the output gradient's rows
  /// gathered from every rank's N/t, the input gradient computed on each rank's rows as they
  /// arrive, then the weight gradient over all N rows.
  @inline(__always)
  func rowParallelBackward(_ dinp: FloatPtr, _ dweight: FloatPtr, _ dout: FloatPtr, _ inp: FloatPtr, _ weight: FloatPtr,
                           _ N: Int, _ IC: Int, _ OC: Int, pool: WorkerPool) {
    precondition(OC == columns && N == rowStarts.last!, "TP overlap planned for (\(rowStarts.last!), \(columns)) outputs")
    let g = sequence!.gathered
    startGather(g, dout, N)
    forEachGatheredPiece(N) { rows in
      matmulBackwardInput(dinp + rows.lowerBound * IC, g + rows.lowerBound * OC, weight, rows.count, IC, OC, pool: pool)
    }
    matmulBackwardWeight(dweight, g, inp, N, IC, OC, features: 0..<OC, pool: pool)
  }
}

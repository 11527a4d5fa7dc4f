// Tensor-parallel communication overlapped with the GEMMs (`--overlap-tp`).
//
// Without sequence parallelism the one overlap is g after a row-parallel GEMM: the output rows
// are split into `chunks` pieces; the GEMM of chunk i+1 runs while chunk i's all-reduce is in
// flight (started as soon as its rows are written, driven between the chunk GEMMs, waited for
// after the last one). An all-reduce is elementwise, and `RangeReduction` reduces each element
// in the order of one all-reduce of the whole output, so the sums are bitwise those of the
// unchunked path; the chunk GEMMs compute every output element with the same dot product as
// the whole GEMM (OpenBLAS blocks the inner dimension the same way whatever the row count), which
// the equivalence tests check.
//
// With sequence parallelism the same pipeline would carry the all-gather before a
// column-parallel GEMM (chunk i+1 gathered while chunk i is multiplied) and the reduce-scatter
// after a row-parallel one (`RangeReductionKind.reduceScatter` per chunk); those are not here.

import TPComm
import TPKernels

/// Row-chunked pipelining of a row-parallel GEMM with its TP all-reduce, for outputs of
/// `rows` × `columns` floats (both row-parallel layers of GPT have the same output shape).
final class TensorParallelOverlap {
  /// Chunk i covers rows `rowStarts[i] ..< rowStarts[i + 1]`.
  let rowStarts: [Int]
  /// One reduction per chunk, all in flight together (each has its own tag).
  let reductions: [RangeReduction]

  init(group: Communicator, rows: Int, columns: Int, chunks: Int) {
    let k = max(1, min(chunks, rows))
    rowStarts = (0...k).map { rows * $0 / k }
    let n = rows * columns
    reductions = (0..<k).map { i in
      RangeReduction(comm: group, tag: 7200 + Int32(i), count: n,
                     range: (rows * i / k * columns)..<(rows * (i + 1) / k * columns))
    }
  }

  /// out (N,OC) = inp (N,IC) · weight (OC,IC)ᵀ summed over the TP group, chunk by chunk:
  /// `RowParallelLinear.forward` with its all-reduce overlapped.
  @inline(__always)
  func rowParallelForward(_ out: FloatPtr, _ inp: FloatPtr, _ weight: FloatPtr, _ N: Int, _ IC: Int, _ OC: Int,
                          pool: WorkerPool) {
    precondition(N == rowStarts.last!, "TP overlap planned for \(rowStarts.last!) rows, called with \(N)")
    for i in 0..<reductions.count {
      let r0 = rowStarts[i], rows = rowStarts[i + 1] - r0
      matmulForward(out + r0 * OC, inp + r0 * IC, weight, nil, rows, IC, OC, pool: pool)
      reductions[i].start(out)
      for j in 0...i { reductions[j].progress() }
    }
    for r in reductions { r.wait() }
  }
}

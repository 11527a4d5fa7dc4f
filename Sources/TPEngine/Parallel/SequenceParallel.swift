// Sequence parallelism's own state: the full-row buffers its conjugates gather into and reduce
// from, and the TP sum of the gradients of parameters each rank used on its own token rows.

import TPKernels

/// Sequence parallelism's (B·T, C) buffers in the activation arena. A column-parallel layer
/// gathers its input rows into `gathered` (again in the backward: only the slice is kept) and
/// reduce-scatters its partial input gradient from `partial`; a row-parallel layer
/// reduce-scatters its partial output from `partial` and gathers its output gradient into
/// `gathered`; the embedding does the same as a row-parallel layer.
struct SequenceParallelBuffers {
  let gathered: FloatPtr  // (B·T, C)
  let partial: FloatPtr  // (B·T, C)
}

extension GPT {
  /// Sequence parallelism, after the backward: every replicated parameter (wpe, the LayerNorm
  /// weights and biases, the row-parallel biases) was used on this rank's rows only, so its
  /// gradient is a partial sum; the all-reduce leaves the whole, identical gradient on every TP
  /// rank (so the global norm still counts each of them once, from TP rank 0). One all-reduce per
  /// run of consecutive replicated tensors in the flat buffer.
  func reduceSequenceParallelGradients() {
    for run in replicatedRuns { tp.reduceSequenceParallelGradient(gradsMemory + run.offset, run.count) }
  }

  /// (offset, count) of each run of consecutive tensors whose `mask` is true, laid out back to
  /// back with `sizes` floats each.
  static func runs(of mask: [Bool], sizes: [Int]) -> [(offset: Int, count: Int)] {
    var runs: [(offset: Int, count: Int)] = []
    var offset = 0
    for (inRun, size) in zip(mask, sizes) {
      if inRun, let last = runs.last, last.offset + last.count == offset {
        runs[runs.count - 1].count += size
      } else if inRun {
        runs.append((offset, size))
      }
      offset += size
    }
    return runs
  }
}

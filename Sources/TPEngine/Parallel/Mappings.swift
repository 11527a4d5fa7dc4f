// Tensor-parallel communication, kept apart from the layers (Megatron's mappings.py).
//
//   f = copyToTensorParallel:     forward identity,   backward all-reduce
//   g = reduceFromTensorParallel: forward all-reduce, backward identity
//
// A transformer layer uses f before each column-parallel block and g after each row-parallel
// block: two all-reduces forward and two backward. The vocab-parallel embedding and
// cross-entropy use the reductions at the bottom of this file.
//
// With sequence parallelism (Korthikanti et al. 2022) the activations between the blocks are
// split by token rows, each rank holding rows [r·N/t, (r+1)·N/t) of the (N = B·T) rows, and the
// conjugates become (Megatron's sequence-parallel regions):
//
//   f = gatherFromSequenceParallel:      forward all-gather,      backward reduce-scatter
//   g = reduceScatterToSequenceParallel: forward reduce-scatter,  backward all-gather
//
// An all-reduce is a reduce-scatter plus an all-gather, so the volume stays that of plain TP.

import TPComm
import TPKernels

/// The TP group's collectives over activation buffers.
public struct TensorParallelMappings {
  public let group: Communicator

  public init(group: Communicator) { self.group = group }

  /// f, forward: identity.
  @inline(__always) public func copyToTensorParallelForward(_ x: FloatPtr, _ n: Int) {}
  /// f, backward: all-reduce of the input gradient.
  @inline(__always) public func copyToTensorParallelBackward(_ dx: FloatPtr, _ n: Int) {
    group.allReduce(dx, count: n, .sum)
  }
  /// g, forward: all-reduce of the partial outputs.
  @inline(__always) public func reduceFromTensorParallelForward(_ y: FloatPtr, _ n: Int) {
    group.allReduce(y, count: n, .sum)
  }
  /// g, backward: identity.
  @inline(__always) public func reduceFromTensorParallelBackward(_ dy: FloatPtr, _ n: Int) {}

  /// Ranks in the group (t).
  public var size: Int { group.size }

  /// f with sequence parallelism, forward: full (t·n) = every rank's slice (n) side by side.
  @inline(__always) public func gatherFromSequenceParallelForward(_ full: FloatPtr, _ slice: FloatPtr, _ n: Int) {
    group.allGather(slice, count: n, into: full)
  }
  /// f with sequence parallelism, backward: dslice (n) = this rank's block of dfull (t·n) summed
  /// over ranks; dfull is left undefined.
  @inline(__always) public func gatherFromSequenceParallelBackward(_ dslice: FloatPtr, _ dfull: FloatPtr, _ n: Int) {
    group.reduceScatter(dfull, count: n, into: dslice, .sum)
  }
  /// g with sequence parallelism, forward: slice (n) = this rank's block of the partial sums
  /// full (t·n) summed over ranks; full is left undefined.
  @inline(__always) public func reduceScatterToSequenceParallelForward(_ slice: FloatPtr, _ full: FloatPtr, _ n: Int) {
    group.reduceScatter(full, count: n, into: slice, .sum)
  }
  /// g with sequence parallelism, backward: dfull (t·n) = every rank's dslice (n) side by side.
  @inline(__always) public func reduceScatterToSequenceParallelBackward(_ dfull: FloatPtr, _ dslice: FloatPtr, _ n: Int) {
    group.allGather(dslice, count: n, into: dfull)
  }

  /// Sequence parallelism: sums over the group the gradient of a parameter that each rank used
  /// on its own token rows (LayerNorm weights and biases, row-parallel biases, wpe), so every
  /// rank holds the same whole gradient.
  @inline(__always) public func reduceSequenceParallelGradient(_ g: FloatPtr, _ n: Int) {
    group.allReduce(g, count: n, .sum)
  }

  /// Vocab-parallel embedding: sums the per-rank partial lookups.
  @inline(__always) public func reduceEmbedding(_ x: FloatPtr, _ n: Int) {
    group.allReduce(x, count: n, .sum)
  }

  /// Vocab-parallel cross-entropy: the row maxima (max over ranks).
  @inline(__always) public func reduceLogitMax(_ rowMax: FloatPtr, _ n: Int) {
    group.allReduce(rowMax, count: n, .max)
  }

  /// Vocab-parallel cross-entropy: Σexp and the target logit, packed (sum over ranks).
  @inline(__always) public func reduceSumExpAndTarget(_ packed: FloatPtr, _ n: Int) {
    group.allReduce(packed, count: n, .sum)
  }
}

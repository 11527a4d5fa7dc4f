// Tensor-parallel communication, kept apart from the layers (Megatron's mappings.py).
//
//   f = copyToTensorParallel:     forward identity,   backward all-reduce
//   g = reduceFromTensorParallel: forward all-reduce, backward identity
//
// A transformer layer uses f before each column-parallel block and g after each row-parallel
// block: two all-reduces forward and two backward. The vocab-parallel embedding and
// cross-entropy use the reductions at the bottom of this file.

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

// Megatron's tensor-parallel linear layers (core/tensor_parallel/layers.py) as forward/backward
// pairs in llm.c's argument order (outputs, inputs, weights, sizes). The communication they
// call, f and g, lives in Mappings.swift; the math is `matmulForward`/`matmulBackward`. With
// `--overlap-tp` both hand their GEMMs and collectives to TensorParallelOverlap.swift, which
// runs them in pipelined pieces with the same results.

import TPKernels

/// Column-parallel linear (Megatron's `ColumnParallelLinear`): Y = X·A + b with A (IC,OC) split
/// by output columns over the TP group, A = [A_1 … A_t], b = [b_1 … b_t] (A is stored transposed,
/// (OC,IC), so a rank holds a block of its rows). Rank r computes Y_r = X·A_r + b_r, which the next layer (attention on this rank's heads, GELU, a
/// row-parallel layer, or the vocab-parallel cross-entropy) consumes as it is: no gather.
///
///   forward:  f (identity; SP: all-gather of the rows) → out = inp · weightᵀ + bias
///   backward: dinp = dout · weight, dweight, dbias → f backward (all-reduce of dinp; SP:
///             reduce-scatter onto the rows, after all-gathering inp again)
struct ColumnParallelLinear {
  let tp: TensorParallelMappings
  let pool: WorkerPool
  /// With sequence parallelism: the full-row buffers the layer gathers into and reduces from.
  let sequence: SequenceParallelBuffers?
  /// With `--overlap-tp`: f pipelined with the GEMMs (TensorParallelOverlap.swift).
  var overlap: TensorParallelOverlap? = nil

  /// out (N,OC) = inp (N,IC) · weight (OC,IC)ᵀ + bias (OC, optional), where OC is this rank's
  /// share of the output features. With sequence parallelism inp is this rank's N/t rows, and f
  /// all-gathers the N rows first.
  @inline(__always)
  func forward(_ out: FloatPtr, _ inp: FloatPtr, _ weight: FloatPtr, _ bias: FloatPtr?,
               _ N: Int, _ IC: Int, _ OC: Int) {
    if let overlap, sequence != nil {
      overlap.columnParallelForward(out, inp, weight, bias, N, IC, OC, pool: pool)
      return
    }
    let x = sequence?.gathered ?? inp
    if sequence == nil { tp.copyToTensorParallelForward(inp, N * IC) }
    else { tp.gatherFromSequenceParallelForward(x, inp, N / tp.size * IC) }
    matmulForward(out, x, weight, bias, N, IC, OC, pool: pool)
  }

  /// dinp (N,IC) = the whole input gradient (this rank's part, then summed over the TP group);
  /// dweight (OC,IC) and dbias (OC, nil when another kernel produces it) are overwritten. With
  /// sequence parallelism inp and dinp are this rank's N/t rows: inp is gathered again (only the
  /// slice is kept), and f backward reduce-scatters the partial input gradient onto the slice.
  @inline(__always)
  func backward(_ dinp: FloatPtr, _ dweight: FloatPtr, _ dbias: FloatPtr?, _ dout: FloatPtr,
                _ inp: FloatPtr, _ weight: FloatPtr, _ N: Int, _ IC: Int, _ OC: Int) {
    if let overlap {
      overlap.columnParallelBackward(dinp, dweight, dbias, dout, inp, weight, N, IC, OC, pool: pool)
      return
    }
    guard let sequence else {
      matmulBackward(dinp, dweight, dbias, dout, inp, weight, N, IC, OC, pool: pool)
      tp.copyToTensorParallelBackward(dinp, N * IC)
      return
    }
    let slice = N / tp.size * IC
    tp.gatherFromSequenceParallelForward(sequence.gathered, inp, slice)
    matmulBackward(sequence.partial, dweight, dbias, dout, sequence.gathered, weight, N, IC, OC, pool: pool)
    tp.gatherFromSequenceParallelBackward(dinp, sequence.partial, slice)
  }
}

/// Row-parallel linear (Megatron's `RowParallelLinear`): Y = X·A + b with A (IC,OC) split by
/// input rows, A = [A_1; …; A_t] (stored transposed, (OC,IC): a block of columns per rank), and
/// its input already split the same way, X = [X_1 … X_t] (the output of a column-parallel
/// layer). Rank r computes the partial product X_r·A_r; g sums the partials over the TP group.
///
/// The bias is not added here: as with Megatron's `skip_bias_add`, the caller gets it back to
/// fuse it into what follows. GPT passes it to `residualLayernormForward`, which adds bias and
/// residual in the sweep of the next LayerNorm; its gradient is the column sums that
/// `layernormBackward` produces while finishing the residual gradient.
///
///   forward:  out = inp · weightᵀ (partial) → g (all-reduce of out; SP: reduce-scatter onto the rows)
///   backward: g backward (identity; SP: all-gather of the rows) → dinp = dout · weight, dweight
struct RowParallelLinear {
  let tp: TensorParallelMappings
  let pool: WorkerPool
  /// With sequence parallelism: the full-row buffers the layer gathers into and reduces from.
  let sequence: SequenceParallelBuffers?
  /// With `--overlap-tp`: the GEMMs and g pipelined in row chunks (TensorParallelOverlap.swift).
  var overlap: TensorParallelOverlap? = nil

  /// out (N,OC) = inp (N,IC) · weight (OC,IC)ᵀ summed over the TP group, where IC is this rank's
  /// share of the input features; no bias (see the type's comment). With sequence parallelism
  /// out is this rank's N/t rows: the partial product goes to the full-row buffer and g
  /// reduce-scatters it.
  @inline(__always)
  func forward(_ out: FloatPtr, _ inp: FloatPtr, _ weight: FloatPtr, _ N: Int, _ IC: Int, _ OC: Int) {
    if let overlap {
      overlap.rowParallelForward(out, inp, weight, N, IC, OC, pool: pool)
      return
    }
    guard let sequence else {
      matmulForward(out, inp, weight, nil, N, IC, OC, pool: pool)
      tp.reduceFromTensorParallelForward(out, N * OC)
      return
    }
    matmulForward(sequence.partial, inp, weight, nil, N, IC, OC, pool: pool)
    tp.reduceScatterToSequenceParallelForward(out, sequence.partial, N / tp.size * OC)
  }

  /// dinp (N,IC) = dout (N,OC) · weight (this rank's input columns), overwritten; dweight (OC,IC)
  /// overwritten. dout is the whole output gradient, the same on every rank; with sequence
  /// parallelism it is this rank's N/t rows, and g backward all-gathers the N rows first.
  @inline(__always)
  func backward(_ dinp: FloatPtr, _ dweight: FloatPtr, _ dout: FloatPtr, _ inp: FloatPtr, _ weight: FloatPtr,
                _ N: Int, _ IC: Int, _ OC: Int) {
    if let overlap, sequence != nil {
      overlap.rowParallelBackward(dinp, dweight, dout, inp, weight, N, IC, OC, pool: pool)
      return
    }
    let g = sequence?.gathered ?? dout
    if sequence == nil { tp.reduceFromTensorParallelBackward(dout, N * OC) }
    else { tp.reduceScatterToSequenceParallelBackward(g, dout, N / tp.size * OC) }
    matmulBackward(dinp, dweight, nil, g, inp, weight, N, IC, OC, pool: pool)
  }
}

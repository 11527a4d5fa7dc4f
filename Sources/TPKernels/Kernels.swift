// TPKernels: the numeric kernels of one rank, with no MPI and no process plumbing; only CBLAS.
//
// Layer kernels are forward/backward pairs, llm.c style: outputs first, then inputs, then
// weights, shape ints last. Backward functions *overwrite* their parameter gradients (every
// parameter has exactly one producer per step, so the step needs no gradient memset); the
// exception is `embeddingBackward`, which adds to the LM head's gradient of the tied `wte`.
// Input gradients are overwritten or accumulated as each function says. Matrix products go
// through one `cblas_sgemm` each. A kernel given a `pool` splits its rows, columns or heads over
// the pool's threads (the default runs it on the calling thread alone); every element comes out
// as it would alone, except column sums split by rows, which are added up from per-thread parts.
//
// The math of a parallel kernel lives in a row (or column-range) function marked
// `@inline(__always)`; the public kernel is a thin wrapper that hands rows to the pool. Shapes
// in the doc comments are element counts of row-major float buffers: B batch, T sequence, C
// channels, N rows (usually B·T), IC/OC input/output features, NH heads of size hs.

/// A float buffer: every tensor argument of the kernels (row-major, shape in the doc comment).
public typealias FloatPtr = UnsafeMutablePointer<Float>

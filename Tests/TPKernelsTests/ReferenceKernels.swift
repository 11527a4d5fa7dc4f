// Unfused kernels the tests check the fused ones against: the separate passes that
// `residualLayernormForward` and `geluBiasBackward` replace in the training step.

@testable import TPKernels

/// out (N,C) += bias (C).
func biasForward(_ out: FloatPtr, _ bias: FloatPtr, _ N: Int, _ C: Int) {
  for i in 0..<N {
    let o = out + i * C
    for c in 0..<C { o[c] += bias[c] }
  }
}

/// out = a + b (N).
func residualForward(_ out: FloatPtr, _ a: FloatPtr, _ b: FloatPtr, _ N: Int) {
  for i in 0..<N { out[i] = a[i] + b[i] }
}

/// dinp = dout · gelu'(inp) (N), overwritten.
func geluBackward(_ dinp: FloatPtr, _ inp: FloatPtr, _ dout: FloatPtr, _ N: Int) {
  for i in 0..<N { dinp[i] = geluDerivative(inp[i]) * dout[i] }
}

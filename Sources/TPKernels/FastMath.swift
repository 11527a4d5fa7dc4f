// exp and tanh without libm calls, so the loops that use them vectorise.

/// exp with ~1 ulp-level relative error (≤ 2e-7) for the softmax range, no libm call.
@inline(__always)
func fastExp(_ x: Float) -> Float {
  // exp(x) = 2^(x·log2 e) = 2^n · 2^f, f in [-0.5, 0.5]
  let xc = max(-87.0, min(88.0, x))
  let t = xc * 1.442695041
  // round to nearest with the 1.5·2^23 trick (vectorises; roundf is a libm call)
  let n = (t + 12_582_912.0) - 12_582_912.0
  let f = t - n
  // minimax polynomial for 2^f on [-0.5, 0.5], Horner steps as fused multiply-adds (Swift does
  // not contract a * b + c on its own)
  var p: Float = 1.535336188319500e-4
  p = Float(1.339887440266574e-3).addingProduct(p, f)
  p = Float(9.618437357674640e-3).addingProduct(p, f)
  p = Float(5.550332471162809e-2).addingProduct(p, f)
  p = Float(2.402264791363012e-1).addingProduct(p, f)
  p = Float(6.931472028550421e-1).addingProduct(p, f)
  p = Float(1.0).addingProduct(p, f)
  let bits = UInt32(bitPattern: Int32(n) + 127) << 23
  return p * Float(bitPattern: bits)
}

/// tanh as a branch-free 13/6 rational approximation on [-7.9, 7.9] (saturated outside);
/// a few ulp of error, and it vectorises (libm's tanhf does not).
@inline(__always)
func fastTanh(_ x: Float) -> Float {
  let c = max(-7.90531110763549805, min(7.90531110763549805, x))
  let x2 = c * c
  // Horner steps as fused multiply-adds
  var p: Float = -2.76076847742355e-16
  p = Float(2.00018790482477e-13).addingProduct(p, x2)
  p = Float(-8.60467152213735e-11).addingProduct(p, x2)
  p = Float(5.12229709037114e-08).addingProduct(p, x2)
  p = Float(1.48572235717979e-05).addingProduct(p, x2)
  p = Float(6.37261928875436e-04).addingProduct(p, x2)
  p = Float(4.89352455891786e-03).addingProduct(p, x2)
  p = p * c
  var q: Float = 1.19825839466702e-06
  q = Float(1.18534705686654e-04).addingProduct(q, x2)
  q = Float(2.26843463243900e-03).addingProduct(q, x2)
  q = Float(4.89352518554385e-03).addingProduct(q, x2)
  return p / q
}

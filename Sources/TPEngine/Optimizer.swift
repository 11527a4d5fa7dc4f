// AdamW (with bias correction, weight decay on every parameter as in llm.c), global gradient
// norm across TP shards, clipping and the learning-rate schedule.

import TPComm

public struct AdamWConfig: Sendable {
  public var learningRate: Float = 3e-4
  public var beta1: Float = 0.9
  public var beta2: Float = 0.999
  public var eps: Float = 1e-8
  public var weightDecay: Float = 0
  /// Clip the global gradient norm to this value; 0 = off.
  public var gradClip: Float = 0
  public init() {}
}

/// Warmup + cosine (or constant) learning-rate schedule.
public struct LRSchedule: Sendable {
  public enum Kind: String, Sendable { case constant, cosine }
  public var kind: Kind = .constant
  public var warmupSteps: Int = 0
  /// Final learning rate of the cosine, as a fraction of the peak.
  public var minFraction: Float = 0.1
  public init() {}

  /// Learning rate for step `k` (from 0) of `total`.
  public func rate(peak: Float, step k: Int, total: Int) -> Float {
    if k < warmupSteps { return peak * Float(k + 1) / Float(warmupSteps) }
    switch kind {
    case .constant: return peak
    case .cosine:
      let span = max(1, total - warmupSteps)
      let progress = min(1, Float(k - warmupSteps) / Float(span))
      let minLR = peak * minFraction
      return minLR + 0.5 * (1 + Float.cos(Float.pi * progress)) * (peak - minLR)
    }
  }
}

extension Float {
  @inline(__always) static func cos(_ x: Float) -> Float { Float(Glibc.cos(Double(x))) }
}

import Glibc

extension GPT {
  /// Global L2 norm of the gradient: sharded tensors summed over TP, replicated tensors once.
  /// With `perTensor`, also stores each local tensor's gradient sum of squares (16 doubles).
  public func gradientNorm(tpGroup: Communicator, perTensor: UnsafeMutablePointer<Double>? = nil) -> Float {
    var sums: (Double, Double) = (0, 0)  // (sharded, replicated)
    var offset = 0
    for i in 0..<localSizes.count {
      let n = localSizes[i]
      let gp = grads + offset
      var s: Float = 0
      var acc: Double = 0
      var k = 0
      while k < n {
        let end = min(n, k + 4096)
        s = 0
        for j in k..<end { s += gp[j] * gp[j] }
        acc += Double(s)
        k = end
      }
      perTensor?[i] = acc
      if replicatedMask[i] { sums.1 += acc } else { sums.0 += acc }
      offset += n
    }
    var total = sums.0 + (local.tpRank == 0 ? sums.1 : 0)
    tpGroup.allReduce(&total, count: 1, .sum)
    return Float(total.squareRoot())
  }

  /// Multiplies every gradient by `s`.
  public func scaleGradients(_ s: Float) {
    for i in 0..<numLocalParameters { grads[i] *= s }
  }

  /// One AdamW update at optimizer step `t` (from 1). With `stats`, also stores per local
  /// tensor the sums of squares of the update and of the new weights (2 doubles per tensor).
  public func adamWUpdate(_ o: AdamWConfig, lr: Float, t: Int, stats: UnsafeMutablePointer<Double>? = nil) {
    let b1c = 1 - Float(Glibc.pow(Double(o.beta1), Double(t)))
    let b2c = 1 - Float(Glibc.pow(Double(o.beta2), Double(t)))
    let (b1, b2, eps, wd) = (o.beta1, o.beta2, o.eps, o.weightDecay)
    guard let stats else {
      for i in 0..<numLocalParameters {
        let gr = grads[i]
        let m = b1 * adamM[i] + (1 - b1) * gr
        let v = b2 * adamV[i] + (1 - b2) * gr * gr
        adamM[i] = m
        adamV[i] = v
        params[i] -= lr * ((m / b1c) / ((v / b2c).squareRoot() + eps) + wd * params[i])
      }
      return
    }
    var offset = 0
    for tensor in 0..<localSizes.count {
      var du: Double = 0, w2: Double = 0
      for i in offset..<(offset + localSizes[tensor]) {
        let gr = grads[i]
        let m = b1 * adamM[i] + (1 - b1) * gr
        let v = b2 * adamV[i] + (1 - b2) * gr * gr
        adamM[i] = m
        adamV[i] = v
        let delta = lr * ((m / b1c) / ((v / b2c).squareRoot() + eps) + wd * params[i])
        params[i] -= delta
        du += Double(delta * delta)
        w2 += Double(params[i] * params[i])
      }
      stats[2 * tensor] = du
      stats[2 * tensor + 1] = w2
      offset += localSizes[tensor]
    }
  }

}

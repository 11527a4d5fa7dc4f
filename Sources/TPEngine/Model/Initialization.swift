// GPT-2 initialisation that is the same full model at every TP size: each tensor's values are
// drawn in global row-major order from a stream seeded by (seed, tensor index); a rank keeps
// the values that fall in its slices and discards the rest.

/// SplitMix64: small, fast, and good enough for weight initialisation.
public struct SplitMix64 {
  public var state: UInt64
  public init(seed: UInt64) { state = seed }
  @inline(__always) public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  /// Uniform in (0, 1].
  @inline(__always) public mutating func uniform() -> Double {
    Double((next() >> 11) + 1) * (1.0 / 9_007_199_254_740_992.0)
  }
}

/// Standard normals by Box–Muller, two at a time.
public struct NormalStream {
  var rng: SplitMix64
  var spare: Double? = nil
  public init(seed: UInt64) { rng = SplitMix64(seed: seed) }
  @inline(__always) public mutating func next() -> Float {
    if let s = spare { spare = nil; return Float(s) }
    let u1 = rng.uniform(), u2 = rng.uniform()
    let r = (-2 * _log(u1)).squareRoot()
    let th = 2 * Double.pi * u2
    spare = r * _sin(th)
    return Float(r * _cos(th))
  }
}

import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _sin(_ x: Double) -> Double { Glibc.sin(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }

extension GPT {
  /// Fills this rank's parameter shards with GPT-2 initialisation from `seed`.
  public func initializeGPT2(seed: UInt64) {
    let c = config
    let residualStd = 0.02 / Float(2 * c.numLayers).squareRoot()
    var offset = 0
    for (i, t) in layout.enumerated() {
      let base = paramsMemory + offset
      offset += localSizes[i]
      switch t.name {
      case "ln1w", "ln2w", "lnfw":
        base.update(repeating: 1, count: localSizes[i])
        continue
      case "wte", "wpe", "qkvw", "fcw", "attprojw", "fcprojw":
        break
      default:
        base.update(repeating: 0, count: localSizes[i])
        continue
      }
      let std: Float = (t.name == "attprojw" || t.name == "fcprojw") ? residualStd : 0.02
      // Only the first V rows of wte are drawn; padded rows stay zero.
      let drawn = t.name == "wte" ? c.vocabSize * c.channels : t.globalCount
      var stream = NormalStream(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(i + 1) &* 0xD1B5_4A32_D192_ED03)
      var globalPos = 0
      t.forEachLocalRun(rank: local.tpRank) { g, l, n in
        // skip the values that belong to other ranks
        while globalPos < g { _ = stream.next(); globalPos += 1 }
        for k in 0..<n {
          base[l + k] = (g + k) < drawn ? stream.next() * std : 0
        }
        globalPos = g + n
      }
    }
  }
}

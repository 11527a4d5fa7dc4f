/// The memory-saving features a run has on, as the segment header's `features` word carries
/// them (bit 0 sequence parallelism, bit 1 distributed optimizer, bits 2–3 the recomputation
/// mode) and as the dashboard's header names them.
public struct RunFeatures: Sendable, Equatable, Hashable {
  /// The header word.
  public var rawValue: UInt64

  /// What the backward recomputes instead of keeping (`--recompute`).
  public enum Recompute: UInt64, Sendable, CaseIterable {
    case none = 0, selective = 1, full = 2
  }

  public static let sequenceParallelBit: UInt64 = 1 << 0
  public static let distributedOptimizerBit: UInt64 = 1 << 1
  public static let recomputeShift: UInt64 = 2
  public static let recomputeMask: UInt64 = 3 << 2

  /// The features of a word read from a header (unknown bits are kept, and ignored).
  public init(rawValue: UInt64) { self.rawValue = rawValue }

  /// The word for these features.
  public init(sequenceParallel: Bool = false, distributedOptimizer: Bool = false, recompute: Recompute = .none) {
    rawValue = (sequenceParallel ? Self.sequenceParallelBit : 0) | (distributedOptimizer ? Self.distributedOptimizerBit : 0)
      | recompute.rawValue << Self.recomputeShift
  }

  /// `--sequence-parallel`.
  public var sequenceParallel: Bool { rawValue & Self.sequenceParallelBit != 0 }
  /// `--distributed-optimizer` (at d > 1: at d = 1 it changes nothing and is not set).
  public var distributedOptimizer: Bool { rawValue & Self.distributedOptimizerBit != 0 }
  /// `--recompute`; an unknown mode reads as `.none`.
  public var recompute: Recompute { Recompute(rawValue: (rawValue & Self.recomputeMask) >> Self.recomputeShift) ?? .none }

  /// The names the dashboard shows, e.g. ["SP", "DistOpt", "recompute=selective"]; empty when
  /// none is on.
  public var labels: [String] {
    (sequenceParallel ? ["SP"] : []) + (distributedOptimizer ? ["DistOpt"] : [])
      + (recompute == .none ? [] : ["recompute=\(recompute)"])
  }
}

/// The memory-saving and communication-overlap features a run has on, as the segment header's
/// `features` word carries them (bit 0 sequence parallelism, bit 1 distributed optimizer, bits
/// 2–3 the recomputation mode, bit 4 overlapped gradient reduction, bit 5 tensor-parallel
/// overlap) and as the dashboard's header names them.
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
  public static let overlapGradReduceBit: UInt64 = 1 << 4
  public static let overlapTPBit: UInt64 = 1 << 5

  /// The features of a word read from a header (unknown bits are kept, and ignored).
  public init(rawValue: UInt64) { self.rawValue = rawValue }

  /// The word for these features.
  public init(sequenceParallel: Bool = false, distributedOptimizer: Bool = false, recompute: Recompute = .none,
              overlapGradReduce: Bool = false, overlapTP: Bool = false) {
    rawValue = (sequenceParallel ? Self.sequenceParallelBit : 0) | (distributedOptimizer ? Self.distributedOptimizerBit : 0)
      | recompute.rawValue << Self.recomputeShift
      | (overlapGradReduce ? Self.overlapGradReduceBit : 0) | (overlapTP ? Self.overlapTPBit : 0)
  }

  /// `--sequence-parallel`.
  public var sequenceParallel: Bool { rawValue & Self.sequenceParallelBit != 0 }
  /// `--distributed-optimizer` (at d > 1: at d = 1 it changes nothing and is not set).
  public var distributedOptimizer: Bool { rawValue & Self.distributedOptimizerBit != 0 }
  /// `--recompute`; an unknown mode reads as `.none`.
  public var recompute: Recompute { Recompute(rawValue: (rawValue & Self.recomputeMask) >> Self.recomputeShift) ?? .none }

  /// `--overlap-grad-reduce` (at d > 1).
  public var overlapGradReduce: Bool { rawValue & Self.overlapGradReduceBit != 0 }
  /// `--overlap-tp` (at t > 1).
  public var overlapTP: Bool { rawValue & Self.overlapTPBit != 0 }

  /// The names the dashboard shows, e.g. ["SP", "DistOpt", "recompute=selective", "OverlapTP"];
  /// empty when none is on.
  public var labels: [String] {
    (sequenceParallel ? ["SP"] : []) + (distributedOptimizer ? ["DistOpt"] : [])
      + (recompute == .none ? [] : ["recompute=\(recompute)"])
      + (overlapGradReduce ? ["OverlapGrad"] : []) + (overlapTP ? ["OverlapTP"] : [])
  }
}

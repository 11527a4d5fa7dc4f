/// The memory-saving and communication-overlap features a run has on, as the segment header's
/// `features` word carries them (bit 0 sequence parallelism, bit 1 distributed optimizer, bits
/// 2–3 the recomputation mode, bit 4 overlapped gradient reduction, bit 5 tensor-parallel
/// overlap) and as the dashboard's header names them. Bits 6–7 say how the job treats control
/// requests (not named in the header; the dashboard's stop prompt and pause notice use them).
public struct RunFeatures: Sendable, Equatable, Hashable {
  /// The header word.
  public var rawValue: UInt64

  /// Which activations the backward recomputes instead of keeping them from the forward
  /// (`--recompute`); the raw value is the header's code.
  public enum Recompute: UInt64, Sendable, CaseIterable {
    /// Keep every layer's activations.
    case none = 0
    /// Megatron's selective recomputation: the attention probabilities (B·H/t·T·T per layer,
    /// the largest activation at long sequences and the cheapest to recompute) are kept for one
    /// layer only and recomputed from Q and K in the backward.
    case selective = 1
    /// Keep only each layer's input; the backward reruns the layer's forward, collectives
    /// included, before its backward.
    case full = 2

    /// The flag's word: none, selective, full.
    public var name: String { String(describing: self) }

    /// The mode a flag names, nil for another word.
    public init?(name: String) {
      guard let mode = Self.allCases.first(where: { $0.name == name }) else { return nil }
      self = mode
    }
  }

  public static let sequenceParallelBit: UInt64 = 1 << 0
  public static let distributedOptimizerBit: UInt64 = 1 << 1
  public static let recomputeShift: UInt64 = 2
  public static let recomputeMask: UInt64 = 3 << 2
  public static let overlapGradReduceBit: UInt64 = 1 << 4
  public static let overlapTPBit: UInt64 = 1 << 5
  /// A stop requested through the control page writes a checkpoint first (tptrain with
  /// `--checkpoint-every`; a Python writer that says so).
  public static let checkpointAtStopBit: UInt64 = 1 << 6
  /// The job applies no control requests: its loop never asks (a Python writer created with
  /// `honours_control=False`). 0, the default, claims nothing either way.
  public static let ignoresControlBit: UInt64 = 1 << 7

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
  /// A stop request writes a checkpoint first.
  public var checkpointAtStop: Bool {
    get { rawValue & Self.checkpointAtStopBit != 0 }
    set { rawValue = newValue ? rawValue | Self.checkpointAtStopBit : rawValue & ~Self.checkpointAtStopBit }
  }
  /// The job declared that it applies no pause, resume, checkpoint or stop request.
  public var ignoresControl: Bool {
    get { rawValue & Self.ignoresControlBit != 0 }
    set { rawValue = newValue ? rawValue | Self.ignoresControlBit : rawValue & ~Self.ignoresControlBit }
  }

  /// The names the dashboard shows, e.g. ["SP", "DistOpt", "recompute=selective", "OverlapTP"];
  /// empty when none is on.
  public var labels: [String] {
    (sequenceParallel ? ["SP"] : []) + (distributedOptimizer ? ["DistOpt"] : [])
      + (recompute == .none ? [] : ["recompute=\(recompute)"])
      + (overlapGradReduce ? ["OverlapGrad"] : []) + (overlapTP ? ["OverlapTP"] : [])
  }
}

extension RunFeatures {
  /// These features with `checkpointAtStop` set as given.
  public func with(checkpointAtStop: Bool) -> RunFeatures {
    var f = self
    f.checkpointAtStop = checkpointAtStop
    return f
  }
}

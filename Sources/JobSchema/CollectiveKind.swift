// Which collective a rank waits in: the engine's communicators report it, the telemetry segment
// stores its raw value (bits 0–7 of a rank header's `waitingIn` word), readers name it.

/// Kinds of collective a rank can wait in (raw values as the telemetry segment stores them).
public enum CollectiveKind: UInt8, Sendable, CaseIterable {
  case allReduce = 1, broadcast = 2, barrier = 3
  /// The step-boundary exchange of world rank 0's control decision.
  case control = 4
  /// Reduce-scatter and all-gather (sequence parallelism, the distributed optimizer).
  case reduceScatter = 5, allGather = 6

  /// Name for display.
  public var name: String {
    switch self {
    case .allReduce: return "all-reduce"
    case .broadcast: return "broadcast"
    case .barrier: return "barrier"
    case .control: return "control exchange"
    case .reduceScatter: return "reduce-scatter"
    case .allGather: return "all-gather"
    }
  }
}

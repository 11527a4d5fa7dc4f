// The job's states, each defined once. Raw values are the codes stored in the telemetry
// segment (docs/TELEMETRY.md): they are part of the shared-memory format and never change.
//
// Decoding a word read from shared memory (`init(rawValue:)`) returns nil for an unknown value;
// each reader decides what nil means and says so where it decides (a reader reports it as
// unknown; the dashboard shows such a rank as starting; the job treats an unknown desired-state
// word as run).

/// A rank's run state, as the engine reports it and the rank header stores it (u64 word).
public enum RunState: UInt64, Sendable, CaseIterable {
  case starting = 0, running = 1, paused = 2, checkpointing = 3, finished = 4, failed = 5

  /// Lower-case name for display and export: the case name.
  public var name: String { String(describing: self) }
}

/// What the job should do at the next step boundary: the control page's desired-state word
/// (u64), which readers set and world rank 0 polls and broadcasts.
public enum DesiredState: UInt64, Sendable, CaseIterable {
  case run = 0, pause = 1, stop = 2

  /// Lower-case name for display and export: the case name.
  public var name: String { String(describing: self) }
}

/// How a parameter tensor is divided among tensor-parallel ranks (Megatron's split kinds); a
/// shard entry's i32 `split` field.
public enum SplitKind: Int32, Sendable, CaseIterable {
  /// Every TP rank holds the whole tensor.
  case replicated = 0
  /// Output rows split (column-parallel linear: Y = X A, A split by columns = our rows).
  case column = 1
  /// Input columns split (row-parallel linear).
  case row = 2
  /// Vocabulary rows split (vocab-parallel embedding / LM head).
  case vocab = 3

  /// Lower-case name for display: the case name.
  public var name: String { String(describing: self) }
}

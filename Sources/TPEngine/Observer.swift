// The engine's outward interface for telemetry and control. The engine knows nothing about
// shared memory: `tptrain` adapts these calls to the Telemetry segment. The vocabulary it reports
// in (`StepMetrics`, `RunState`, `DesiredState`) is JobSchema's, shared with the segment and the
// dashboard.

import JobSchema

/// What the job should do at the next step boundary. Decided on world rank 0 and broadcast, so
/// every rank applies it at the same step.
public struct ControlDecision: Sendable, Equatable {
  public var desired: DesiredState
  /// Monotonic counter of checkpoint requests; a change asks for one checkpoint.
  public var checkpointRequests: Int32
  public init(desired: DesiredState = .run, checkpointRequests: Int32 = 0) {
    self.desired = desired
    self.checkpointRequests = checkpointRequests
  }
}

/// Things that happen between steps.
public enum TrainingEvent: Sendable {
  case checkpointSaved(step: Int, path: String)
  case paused(step: Int)
  case resumed(step: Int)
  case stopped(step: Int)
  case nonFiniteLoss(step: Int)
  case error(String)
}

/// Receives the trainer's measurements and supplies control decisions. Every rank has one.
/// `stepFinished` runs on the training thread after every step and must not block or allocate.
public protocol TrainingObserver: AnyObject {
  func stateChanged(_ state: RunState)
  func stepFinished(_ metrics: StepMetrics)
  /// Called on world rank 0 only, at each step boundary and every tick while paused.
  func pollControl() -> ControlDecision
  /// Called on every rank while paused (about every 10 ms) to keep the heartbeat fresh.
  func heartbeat()
  func event(_ event: TrainingEvent)
  /// Norms of this rank's parameter shards (see the default implementation below).
  func tensorStatistics(step: Int, values: UnsafeBufferPointer<Float>)
}

extension TrainingObserver {
  /// Norms of this rank's parameter shards, every few steps: `values` holds (weight norm,
  /// gradient norm, update/weight ratio) for each of the 16 tensors in llm.c order. The buffer
  /// is only valid during the call. Default: ignored.
  public func tensorStatistics(step: Int, values: UnsafeBufferPointer<Float>) {}
}

/// Observer that ignores everything and never asks for a pause.
public final class NullObserver: TrainingObserver {
  public init() {}
  public func stateChanged(_ state: RunState) {}
  public func stepFinished(_ metrics: StepMetrics) {}
  public func pollControl() -> ControlDecision { ControlDecision() }
  public func heartbeat() {}
  public func event(_ event: TrainingEvent) {}
}

// The engine's outward interface for telemetry and control. The engine knows nothing about
// shared memory: `tptrain` adapts these calls to the Telemetry segment. The vocabulary it reports
// in (`StepMetrics`, `RunState`, `DesiredState`) is JobSchema's, shared with the segment and the
// dashboard.

import JobSchema
import TPComm

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
  /// Called on every rank while paused to keep the heartbeat fresh: every tick (about 10 ms) on
  /// a ticking rank, at least every 100 ms on one sleeping on its node (`PausedSleep`).
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

/// The wake word the paused ranks of one node share (on a node's telemetry segment). The node
/// leader ticks over MPI while paused; the node's other ranks sleep on this channel until the
/// leader sees a change and wakes them.
public protocol PausedNodeChannel: AnyObject {
  /// Leader: wakes every rank of the node sleeping in `sleepUntilWoken`, once each.
  func wakeNode()
  /// Any other rank: sleeps until the leader's next wake (true) or `timeoutNs` (false). Each
  /// wake is consumed once, so a wake sent before the call returns at once.
  func sleepUntilWoken(timeoutNs: Int64) -> Bool
  /// A sleeping rank's stop signal, for its leader (kept: the largest posted).
  func postSignal(_ signal: Int32)
  /// Leader: the largest signal posted on the node (0 none).
  func postedSignal() -> Int32
  /// Leader: forgets posted signals (a word left by an earlier process).
  func clearPostedSignal()
}

/// How one rank waits while the job is paused (`Trainer.pausedSleep`).
public struct PausedSleep {
  /// The node leaders (world rank 0 is rank 0 here); every rank takes part in creating it.
  public let leaders: Communicator
  /// True on each node's local rank 0.
  public let isLeader: Bool
  public let node: PausedNodeChannel
  public init(leaders: Communicator, isLeader: Bool, node: PausedNodeChannel) {
    self.leaders = leaders
    self.isLeader = isLeader
    self.node = node
  }
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

import Glibc
import JobSchema
import TPComm
import TPEngine
import RunStore
import Telemetry

/// Adapts the engine's observer calls to the job's telemetry segment (docs/TELEMETRY.md).
///
/// Local rank 0 creates the segment, then every rank calls `barrier()` (an MPI barrier the
/// caller supplies), then the other local ranks open it. Each rank writes only its own header
/// and ring; `pollControl()` (world rank 0 only) reads the control page.
final class TelemetryObserver: TrainingObserver, PausedNodeChannel {
  let segment: SegmentWriter
  let writer: RankWriter
  let worldRank: Int
  /// Last step finished on this rank (the start step before the first).
  var lastStep = 0
  /// Collectives of each kind entered since the last finished step (index: kind raw value, so
  /// one slot more than the largest raw value; the all-gather, 6, wrote past a five-slot tuple).
  private var collectiveOrdinals: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
  /// On a rank of another node than world rank 0's: sends its records there.
  var sender: ForwardingSender?
  /// On world rank 0 of a job on several nodes: takes the other nodes' records.
  var receiver: ForwardingReceiver?
  /// On world rank 0 of a recorded job: its run recorder (a thread of its own), finished with the
  /// run's final state when training ends (`finishRecording`).
  var recorder: RunRecorder?
  /// On world rank 0 of a recorded job: copies the records the recorder has not read yet out
  /// of rings about to overwrite them (`RingRescue`), at every step end.
  var rescue: RingRescue?
  /// Wakes of the node's paused ranks this rank has consumed (`sleepUntilWoken`); read when the
  /// segment is opened, before the leader can wake anyone.
  private var wakesSeen: UInt32 = 0
  /// While paused or waiting, forwarded headers are refreshed this often (ns).
  static let idleForwardNs: UInt64 = 100_000_000
  /// Beats this rank's heartbeat while it writes a checkpoint (file I/O, no steps).
  private let writeHeartbeat: WriteHeartbeat

  /// `anyFailed` is a collective over every rank of the job (world): it returns whether any
  /// rank passed true, and doubles as the barrier between creating and opening the segments.
  /// - Throws: `TelemetryError` when the segment cannot be created or opened. Every rank throws
  ///   when any node's creator failed (its own error on the creator), so no rank opens a segment
  ///   it did not create (a finished job's of the same name) and none is left in a collective.
  init(
    jobName: String, in space: SegmentSpace, worldRank: Int, worldSize: Int, localRank: Int, nodeIndex: Int, tp: Int, dp: Int,
    model: ModelShape, preset: String, shards: [ShardedTensor], totalSteps: Int, features: RunFeatures,
    slotCount: Int = SegmentLayout.defaultSlotCount, rankNodes: [Int] = [], anyFailed: (Bool) -> Bool
  ) throws {
    self.worldRank = worldRank
    var created: SegmentWriter?
    var creationError: Error?
    if localRank == 0 {
      let description = JobDescription(
        name: jobName, model: model, preset: preset, worldSize: worldSize, tp: tp, dp: dp, totalSteps: totalSteps,
        shards: shards, features: features)
      do { created = try SegmentWriter.create(description, in: space, slotCount: slotCount) } catch { creationError = error }
      // the other nodes' ranks never attach here: their node, for a view of this node alone
      for (rank, node) in rankNodes.enumerated() where node != nodeIndex { created?.recordNode(ofRank: rank, node: node) }
    }
    let failedSomewhere = anyFailed(creationError != nil)
    if let e = creationError { throw e }
    if failedSomewhere {
      throw TelemetryError.invalidArgument("the telemetry segment of job '\(jobName)' could not be created (see the creating rank's error)")
    }
    let segment = try created ?? SegmentWriter.open(job: jobName, in: space)
    self.segment = segment
    writer = try segment.rankWriter(worldRank: worldRank, localRank: localRank, nodeIndex: nodeIndex)
    writeHeartbeat = WriteHeartbeat(writer: writer)
    wakesSeen = segment.pausedWakeGeneration()
  }

  // PausedNodeChannel: the node's segment holds the wake word.

  func wakeNode() { segment.wakePausedRanks() }

  func sleepUntilWoken(timeoutNs: Int64) -> Bool {
    guard segment.sleepWhilePaused(generation: wakesSeen, timeoutNs: timeoutNs) else { return false }
    wakesSeen &+= 1
    return true
  }

  func postSignal(_ signal: Int32) { segment.postPausedSignal(UInt32(clamping: signal)) }

  func postedSignal() -> Int32 { Int32(clamping: segment.pausedSignal()) }

  func clearPostedSignal() { segment.clearPausedSignal() }

  func stateChanged(_ state: RunState) {
    if state == .checkpointing { writeHeartbeat.begin() } else { writeHeartbeat.end() }
    writer.setState(state)
    switch state {
    case .paused: writer.acknowledge(.pause, step: lastStep)
    case .running: writer.acknowledge(.run, step: lastStep)
    default: break
    }
    writer.heartbeat()
  }

  /// Publishes the step's metrics as they are; no allocation, no system call besides the vDSO
  /// clock read for the heartbeat.
  func stepFinished(_ m: StepMetrics) {
    let now = telemetryMonotonicNanos()
    writer.writeStep(m, timestampNs: now)
    writer.heartbeat(nowNs: now)
    lastStep = m.step
    collectiveOrdinals = (0, 0, 0, 0, 0, 0, 0, 0)
    writer.acknowledge(.run, step: m.step)
    sender?.flush(nowNs: now)
    receiver?.drain(nowNs: now)
    rescue?.rescue()
  }

  func pollControl() -> ControlDecision {
    // relayed requests reach the control page before it is read
    receiver?.drain(nowNs: telemetryMonotonicNanos())
    let c = writer.pollControl()
    return ControlDecision(desired: c.desired, checkpointRequests: Int32(truncatingIfNeeded: c.checkpointRequests))
  }

  func heartbeat() {
    let now = telemetryMonotonicNanos()
    writer.heartbeat(nowNs: now)
    sender?.flush(nowNs: now, minIntervalNs: Self.idleForwardNs)
  }

  func tensorStatistics(step: Int, values: UnsafeBufferPointer<Float>) {
    writer.writeTensorStats(step: step, firstTensor: 0, values: values)
  }

  func event(_ e: TrainingEvent) {
    switch e {
    case .checkpointSaved(let step, let path):
      writer.writeEvent(.checkpointSaved, step: step, text: path)
      writer.checkpointSaved(step: step)
    case .paused(let step): applied(.pause, event: .paused, step: step)
    case .resumed(let step): applied(.run, event: .resumed, step: step)
    case .stopped(let step): applied(.stop, event: .stopped, step: step)
    case .nonFiniteLoss(let step):
      writer.writeEvent(.nonFiniteLoss, step: step)
    case .error(let text):
      writer.writeEvent(.error, step: lastStep, text: text)
    }
    writer.heartbeat()
  }

  /// A control decision applied at `step`: its event, this rank's acknowledgement, and (on a
  /// node leader of another node) the decision shown on that node's control page.
  private func applied(_ desired: DesiredState, event: EventKind, step: Int) {
    writer.writeEvent(event, step: step)
    writer.acknowledge(desired, step: step)
    sender?.reflect(desired)
  }

  /// The job is ending (every rank's final state is in its header): the other nodes' ranks send
  /// their last messages and world rank 0 takes them. Collective in effect; outside any step.
  func finishForwarding() {
    sender?.finish()
    receiver?.finish()
  }

  /// Marks this rank finished (or failed). The segment stays for late readers until `tptop gc`.
  func finish(failed: Bool) {
    writeHeartbeat.end()
    writer.setState(failed ? .failed : .finished)
    writer.heartbeat()
  }
}

/// Publishes the collective this rank waits in (two stores before it, one after) and beats while
/// it waits, so readers can tell a waiting rank from one that does not move.
extension TelemetryObserver: CollectiveWaitObserver {
  func collectiveBegan(_ kind: CollectiveKind, nowNs: UInt64) {
    let ordinal = withUnsafeMutableBytes(of: &collectiveOrdinals) { raw -> Int in
      precondition(Int(kind.rawValue) < raw.count / MemoryLayout<Int>.stride, "one ordinal slot per collective kind")
      let p = raw.baseAddress!.assumingMemoryBound(to: Int.self) + Int(kind.rawValue)
      p.pointee &+= 1
      return p.pointee
    }
    writer.enterCollective(kind: kind.rawValue, ordinal: ordinal, step: lastStep + 1, nowNs: nowNs)
  }

  func collectiveWaiting(nowNs: UInt64) {
    writer.heartbeat(nowNs: nowNs)
    // a rank waiting for its peers still reports; world rank 0 still takes reports
    sender?.flush(nowNs: nowNs, minIntervalNs: Self.idleForwardNs)
    receiver?.drain(nowNs: nowNs, minIntervalNs: Self.idleForwardNs)
  }

  func collectiveEnded() { writer.leaveCollective() }
}

import Glibc
import JobSchema
import TPComm
import Telemetry

/// Tag of forwarding messages: the one kind of message on the forwarding's own duplicate of the
/// world (`MessageSpace.telemetryForwarding`), which no other part of the job posts on.
let forwardingTag: Int32 = 0
/// Longest wait for the last messages when the job ends, ns.
let forwardingFinalWaitNs: UInt64 = 10_000_000_000

/// CPU time of the calling thread, ns (a system call: only for `--forwarding-stats`).
func threadCPUNanos() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
  return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// A rank on a node other than world rank 0's: every record it publishes also goes, batched, to
/// world rank 0 (one `MPI_Isend` per step end, never waited for inside a step; a few times a second
/// while paused or waiting, so its heartbeat there stays fresh). Node leaders also relay control
/// requests written on their node's page.
final class ForwardingSender {
  let forwarder = RecordForwarder()
  let writer: RankWriter
  let slots: MessageSlots
  /// The node's segment, when this rank is its node's leader (it relays that page's requests).
  let relaySegment: SegmentWriter?
  private var seen: (writes: UInt64, checkpoints: UInt64) = (0, 0)
  private var reflected = DesiredState.run
  private var lastSealNs: UInt64 = 0
  /// CPU time spent in `flush`, ns, counted when `measuring` (benchmark: `--forwarding-stats`).
  private(set) var spentNs: UInt64 = 0
  var measuring = false

  init(writer: RankWriter, world: Communicator, relaySegment: SegmentWriter?) {
    self.writer = writer
    slots = MessageSlots(world, slots: 1)
    self.relaySegment = relaySegment
    writer.forwarder = forwarder
  }

  /// Sends the pending records and header if the previous message is done and `minIntervalNs`
  /// passed since the last one; otherwise leaves them pending (a full pending message drops
  /// further records, counted as never forwarded). Never blocks.
  @inline(__always)
  func flush(nowNs: UInt64, minIntervalNs: UInt64 = 0) {
    let start = measuring ? threadCPUNanos() : 0
    defer { if measuring { spentNs &+= threadCPUNanos() &- start } }
    if nowNs &- lastSealNs < minIntervalNs || slots.test(0) == nil { return }
    send(final: false)
    lastSealNs = nowNs
  }

  private func send(final: Bool) {
    var relay = relaySegment?.takeControlWrites(since: &seen)
    // a request that only repeats what the job already does (a checkpoint asked for alone)
    // must not undo a newer request made elsewhere
    if relay?.desired == reflected { relay?.desired = nil }
    if let r = relay, r.desired == nil && r.checkpoints == 0 { relay = nil }
    slots.send(forwarder.seal(writer, final: final, relay: relay), to: 0, tag: forwardingTag, slot: 0)
  }

  /// The job applied `desired` at a step boundary: show it on this node's page too.
  func reflect(_ desired: DesiredState) {
    reflected = desired
    relaySegment?.reflectDecision(desired, seen: seen)
  }

  /// The last message, once the rank's final state is in its header; waits for it (the job is
  /// ending, no step runs).
  func finish() {
    _ = slots.wait(0, timeoutNs: forwardingFinalWaitNs)
    send(final: true)
    _ = slots.wait(0, timeoutNs: forwardingFinalWaitNs)
  }
}

/// World rank 0: one posted receive per rank of the other nodes, into preallocated buffers;
/// each message that arrived is applied to that rank's header and ring in this node's segment,
/// and a relayed control request to this node's control page, the job's one source of truth.
final class ForwardingReceiver {
  let segment: SegmentWriter
  let remoteRanks: [Int]
  private let writers: [RankWriter]
  private let slots: MessageSlots
  private let buffers: UnsafeMutableRawPointer
  private let messageBytes = RecordForwarder().messageBytes
  private var finals: [Bool]
  private var lastDrainNs: UInt64 = 0
  /// CPU time spent in `drain`, ns, counted when `measuring` (benchmark: `--forwarding-stats`).
  private(set) var spentNs: UInt64 = 0
  var measuring = false

  init(segment: SegmentWriter, remoteRanks: [Int], world: Communicator) throws {
    self.segment = segment
    self.remoteRanks = remoteRanks
    writers = try remoteRanks.map { try segment.forwardedRankWriter(worldRank: $0) }
    slots = MessageSlots(world, slots: remoteRanks.count)
    buffers = .allocate(byteCount: max(1, remoteRanks.count) * messageBytes, alignment: 64)
    finals = Array(repeating: false, count: remoteRanks.count)
    for i in remoteRanks.indices { post(i) }
  }

  deinit { buffers.deallocate() }

  private func post(_ i: Int) {
    slots.receive(into: buffers + i * messageBytes, capacity: messageBytes, from: remoteRanks[i], tag: forwardingTag, slot: i)
  }

  /// Applies every message that has arrived (at most a few per rank), then reposts the receives.
  /// Never blocks; no allocation.
  func drain(nowNs: UInt64, minIntervalNs: UInt64 = 0) {
    if nowNs &- lastDrainNs < minIntervalNs { return }
    let start = measuring ? threadCPUNanos() : 0
    defer { if measuring { spentNs &+= threadCPUNanos() &- start } }
    lastDrainNs = nowNs
    for i in remoteRanks.indices where !finals[i] {
      var taken = 0
      while taken < 8, let bytes = slots.test(i) {
        if bytes > 0 {
          let (relay, final) = writers[i].applyForwarded(
            UnsafeRawBufferPointer(start: buffers + i * messageBytes, count: bytes), nowNs: telemetryMonotonicNanos())
          if let r = relay { segment.relayControl(r) }
          if final {
            finals[i] = true
            break
          }
        }
        post(i)
        taken += 1
      }
    }
  }

  /// Takes the other ranks' last messages (until each sent its final one, or the wait runs
  /// out), then withdraws the receives still posted.
  func finish() {
    let start = telemetryMonotonicNanos()
    while finals.contains(false) && telemetryMonotonicNanos() &- start < forwardingFinalWaitNs {
      drain(nowNs: telemetryMonotonicNanos())
      usleep(200)
    }
    for i in remoteRanks.indices { slots.cancel(i) }
  }
}

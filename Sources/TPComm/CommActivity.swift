// Exposed versus in-flight communication of one rank, per step.
//
// A blocking collective is in flight and exposed from entry to exit. A non-blocking one
// (NonBlocking.swift) is in flight from its start until a test or wait sees it complete, and
// exposed only while the rank is blocked waiting for it. In-flight time is the union of those
// intervals over every communicator that shares this object (collectives that overlap in time
// count once), so exposed ≤ in flight ≤ the step's wall time.
//
// Exposed time is split into waiting for a peer and transfer. With the ring (`--collectives
// ring`), a blocking collective's first step cannot finish before the left neighbour has entered
// the collective; the part of the first step beyond the mean of its later steps is counted as
// waiting for a peer, the rest as transfer. This is an estimate: it sees only the left
// neighbour (with p > 2 a later step can still wait on a farther peer, which counts as transfer),
// a collective of one ring step (a reduce-scatter or all-gather over 2 ranks) has nothing to
// compare with and counts as transfer, and with `--collectives mpi` and for non-blocking waits
// the split is not made (all of it counts as transfer).

/// One rank's communication time since the last `reset()`: exposed (blocked), in flight
/// (union of intervals), and of the exposed time the part spent waiting for a peer.
public final class CommActivity {
  /// Time blocked in collectives or in waits for non-blocking ones.
  public private(set) var exposedNs: UInt64 = 0
  /// Of `exposedNs`, the estimated time spent waiting for a peer to arrive.
  public private(set) var peerWaitNs: UInt64 = 0
  /// Union of the intervals in which at least one collective was in flight (those still in
  /// flight count up to the last `settle(now:)`).
  public private(set) var inFlightNs: UInt64 = 0
  /// Non-blocking collectives in flight now.
  public private(set) var active = 0
  private var busySince: UInt64 = 0

  public init() {}

  /// Starts a new step's accounting (collectives in flight keep counting from `nowNs`).
  public func reset(nowNs: UInt64 = monotonicNanos()) {
    exposedNs = 0
    peerWaitNs = 0
    inFlightNs = 0
    if active > 0 { busySince = nowNs }
  }

  /// A blocking collective from `t0` to `t1`.
  @inline(__always)
  func blocking(from t0: UInt64, to t1: UInt64, peerWaitNs peer: UInt64) {
    exposedNs &+= t1 &- t0
    peerWaitNs &+= min(peer, t1 &- t0)
    if active == 0 { inFlightNs &+= t1 &- t0 }
  }

  /// A non-blocking collective started at `nowNs`.
  @inline(__always)
  func started(nowNs: UInt64) {
    if active == 0 { busySince = nowNs }
    active += 1
  }

  /// A non-blocking collective was seen complete at `nowNs`.
  @inline(__always)
  func finished(nowNs: UInt64) {
    active -= 1
    if active == 0 { inFlightNs &+= nowNs &- busySince }
  }

  /// The rank was blocked `nanos` waiting for non-blocking collectives.
  @inline(__always)
  func waited(_ nanos: UInt64) { exposedNs &+= nanos }
}

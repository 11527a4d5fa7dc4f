import CMPI
import Glibc

/// Non-blocking point-to-point messages on a communicator, for traffic that must never hold up a
/// step (telemetry forwarded between nodes): each message has a slot whose request is kept here,
/// so starting, testing and finishing messages allocates nothing and never blocks.
///
///     let channel = MessageSlots(world, slots: 2)
///     channel.send(bytes, to: 0, tag: 7100, slot: 0)     // MPI_Isend
///     if channel.test(slot: 0) != nil { ... }              // done: the slot is free again
public final class MessageSlots {
  private let communicator: Communicator
  private let requests: UnsafeMutablePointer<MPI_Request?>
  /// Number of slots.
  public let count: Int

  /// `slots` idle slots on `communicator`.
  public init(_ communicator: Communicator, slots: Int) {
    self.communicator = communicator
    count = slots
    requests = .allocate(capacity: slots)
    requests.initialize(repeating: cmpi_request_null(), count: slots)
  }

  deinit { requests.deallocate() }

  /// Whether slot `slot` has no message in flight.
  public func isIdle(_ slot: Int) -> Bool { requests[slot] == cmpi_request_null() }

  /// Starts sending `bytes` to rank `destination` (`MPI_Isend`); the bytes must stay untouched
  /// until the slot tests done. The slot must be idle.
  public func send(_ bytes: UnsafeRawBufferPointer, to destination: Int, tag: Int32, slot: Int) {
    MPI_Isend(bytes.baseAddress, Int32(bytes.count), cmpi_byte(), Int32(destination), tag, communicator.handle, requests + slot)
  }

  /// Posts a receive of at most `capacity` bytes from rank `source` into `buffer` (`MPI_Irecv`).
  /// The slot must be idle.
  public func receive(into buffer: UnsafeMutableRawPointer, capacity: Int, from source: Int, tag: Int32, slot: Int) {
    MPI_Irecv(buffer, Int32(capacity), cmpi_byte(), Int32(source), tag, communicator.handle, requests + slot)
  }

  /// Tests slot `slot` (driving MPI's progress): nil while its message is in flight, else the
  /// bytes it carried (0 for an idle slot); the slot is then idle.
  public func test(_ slot: Int) -> Int? {
    if isIdle(slot) { return 0 }
    var done: Int32 = 0
    var status = MPI_Status()
    MPI_Test(requests + slot, &done, &status)
    guard done != 0 else { return nil }
    var bytes: Int32 = 0
    MPI_Get_count(&status, cmpi_byte(), &bytes)
    return Int(max(0, bytes))
  }

  /// Waits up to `timeoutNs` for slot `slot`, napping 100 µs between tests (outside any step:
  /// a rank's last message before it leaves). Returns whether it completed.
  public func wait(_ slot: Int, timeoutNs: UInt64) -> Bool {
    let start = monotonicNanos()
    while test(slot) == nil {
      if monotonicNanos() &- start > timeoutNs { return false }
      usleep(100)
    }
    return true
  }

  /// Cancels the message of slot `slot` if one is in flight (a posted receive nobody will
  /// match), and frees its request.
  public func cancel(_ slot: Int) {
    guard !isIdle(slot) else { return }
    MPI_Cancel(requests + slot)
    MPI_Wait(requests + slot, cmpi_status_ignore())
  }
}

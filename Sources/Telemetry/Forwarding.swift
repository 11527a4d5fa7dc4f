// Records of ranks on other nodes, carried to the segment on world rank 0's node.
//
// A rank on another node writes its ring in its own node's segment as usual; every record it
// publishes is also appended to a pending message (`RecordForwarder`). At each step end (and
// while paused or waiting, a few times a second) the job's MPI layer sends the sealed message to
// world rank 0, which applies it to that rank's header and ring in its own node's segment
// (`RankWriter.applyForwarded`). Each ring keeps exactly one writer process: world rank 0 writes
// every forwarded ring of its node's segment. docs/TELEMETRY.md ("Jobs on several nodes").

import Atomics
import Glibc
import JobSchema

/// Byte layout of one forwarding message: a preamble, a copy of the sender's rank header, then
/// `recordCount` record payloads of 248 bytes (slot bytes 8..<256, checksum included).
public enum ForwardMessage {
  /// Preamble offsets: record count (u32: payloads after the header copy), flags (u32:
  /// `finalFlag` | `relayFlag`), the sender's CLOCK_MONOTONIC ns when it sealed the message (u64),
  /// records it has put into messages so far, these included (u64), the `DesiredState` asked for
  /// on its node (u64, with `relayFlag`; all ones for none), checkpoint requests made there since
  /// its previous relay (u64).
  public static let (recordCount, flags, sealedNs, forwardedRecords, relayDesired, relayCheckpoints) = (0, 4, 8, 16, 24, 32)
  /// The sender's 256-byte rank header, copied as it is, then the first record payload.
  public static let (header, records) = (64, 64 + SegmentLayout.RankHeader.stride)
  /// Bytes of one record payload.
  public static let recordSize = SegmentLayout.Slot.payloadSize

  /// The sender's last message: it finished, failed or stopped.
  public static let finalFlag: UInt32 = 1
  /// A control request made on the sender's node rides on this message.
  public static let relayFlag: UInt32 = 2

  /// Bytes of a message of `records` records.
  public static func size(records: Int) -> Int { Self.records + records * recordSize }
}

/// A control request made on another node (`tptop pause` there), on its way to the one control
/// page the job obeys: world rank 0's.
public struct ControlRelay: Sendable, Equatable {
  /// The desired state written there, nil when only checkpoints were asked for.
  public var desired: DesiredState?
  /// Checkpoint requests made there.
  public var checkpoints: UInt64
  /// Creates a relay.
  public init(desired: DesiredState?, checkpoints: UInt64) {
    self.desired = desired
    self.checkpoints = checkpoints
  }
}

/// The sending side: collects the payloads a rank publishes into a pending message, double
/// buffered so one message can be in flight while the next fills. Allocates only at creation.
public final class RecordForwarder {
  /// Records one message holds; more records between two sends are dropped (and counted).
  public let capacity: Int
  /// Bytes of a full message.
  public let messageBytes: Int
  private let buffers: (UnsafeMutableRawPointer, UnsafeMutableRawPointer)
  private var filling = 0
  private var count = 0
  /// Records put into messages so far.
  public private(set) var forwarded: UInt64 = 0
  /// Records dropped because the pending message was full (the previous send had not completed).
  public private(set) var dropped: UInt64 = 0

  /// - Parameter capacity: records per message (a step writes one step record, sometimes a
  ///   statistics record and a few events).
  public init(capacity: Int = 64) {
    self.capacity = capacity
    messageBytes = ForwardMessage.size(records: capacity)
    buffers = (.allocate(byteCount: messageBytes, alignment: 64), .allocate(byteCount: messageBytes, alignment: 64))
    buffers.0.initializeMemory(as: UInt8.self, repeating: 0, count: messageBytes)
    buffers.1.initializeMemory(as: UInt8.self, repeating: 0, count: messageBytes)
  }

  deinit {
    buffers.0.deallocate()
    buffers.1.deallocate()
  }

  private var pending: UnsafeMutableRawPointer { filling == 0 ? buffers.0 : buffers.1 }

  /// Records waiting in the pending message.
  public var pendingRecords: Int { count }

  /// Appends one published payload (248 bytes); drops it when the message is full.
  @inline(__always)
  func append(_ payload: UnsafeRawPointer) {
    guard count < capacity else {
      dropped &+= 1
      return
    }
    copyPayload(from: payload, to: pending + ForwardMessage.records + count * ForwardMessage.recordSize)
    count += 1
  }

  /// Seals the pending message (preamble and a copy of `writer`'s header) and starts filling the
  /// other buffer. The caller sends the returned bytes and must not seal again before that send
  /// completed. No allocation, no system call besides the clock read.
  public func seal(_ writer: RankWriter, final: Bool = false, relay: ControlRelay? = nil) -> UnsafeRawBufferPointer {
    let m = pending
    forwarded &+= UInt64(count)
    m.storeBytes(of: UInt32(count), toByteOffset: ForwardMessage.recordCount, as: UInt32.self)
    let flags = (final ? ForwardMessage.finalFlag : 0) | (relay != nil ? ForwardMessage.relayFlag : 0)
    m.storeBytes(of: flags, toByteOffset: ForwardMessage.flags, as: UInt32.self)
    m.storeBytes(of: telemetryMonotonicNanos(), toByteOffset: ForwardMessage.sealedNs, as: UInt64.self)
    m.storeBytes(of: forwarded, toByteOffset: ForwardMessage.forwardedRecords, as: UInt64.self)
    m.storeBytes(of: relay?.desired.map { $0.rawValue } ?? UInt64.max, toByteOffset: ForwardMessage.relayDesired, as: UInt64.self)
    m.storeBytes(of: relay?.checkpoints ?? 0, toByteOffset: ForwardMessage.relayCheckpoints, as: UInt64.self)
    (m + ForwardMessage.header).copyMemory(from: writer.header, byteCount: SegmentLayout.RankHeader.stride)
    let bytes = ForwardMessage.size(records: count)
    filling ^= 1
    count = 0
    return UnsafeRawBufferPointer(start: m, count: bytes)
  }
}

extension RankWriter {
  /// Applies one forwarding message of this (forwarded) rank, received at `nowNs` on this node's
  /// clock: claims the header on the first message (the sender's pid, host, local rank and node),
  /// republishes its records with their timestamps moved to this clock, copies its header words
  /// (`RankHeader.mirroredWords`), and beats. Returns the control request riding on it, if any;
  /// nil also for a message too short to be one (ignored). No allocation.
  public func applyForwarded(_ message: UnsafeRawBufferPointer, nowNs: UInt64) -> (relay: ControlRelay?, final: Bool) {
    typealias F = ForwardMessage
    guard keepsForwardedRank, let m = message.baseAddress, message.count >= F.records else { return (nil, false) }
    let count = Int(m.load(fromByteOffset: F.recordCount, as: UInt32.self))
    guard count <= (message.count - F.records) / F.recordSize else { return (nil, false) }
    let flags = m.load(fromByteOffset: F.flags, as: UInt32.self)
    let sealed = m.load(fromByteOffset: F.sealedNs, as: UInt64.self)
    let source = m + F.header
    // a sender-clock time → this clock: the same distance before the receipt as before the seal
    @inline(__always) func translate(_ t: UInt64) -> UInt64 { sealed >= t ? nowNs &- min(nowNs, sealed &- t) : nowNs }
    if !forwardedAttached { claimForwarded(from: source) }
    withUnsafeTemporaryAllocation(byteCount: F.recordSize, alignment: 8) { buf in
      let p = buf.baseAddress.unsafelyUnwrapped
      for i in 0..<count {
        copyPayload(from: m + F.records + i * F.recordSize, to: p)
        // restamp only records that arrived intact; a damaged one stays damaged for readers
        if RecordCodec.checksum(UnsafeRawPointer(p)) == p.load(fromByteOffset: SegmentLayout.Slot.checksum - RecordCodec.base, as: UInt64.self) {
          let ts = SegmentLayout.Slot.timestampNs - RecordCodec.base
          p.storeBytes(of: translate(p.load(fromByteOffset: ts, as: UInt64.self)), toByteOffset: ts, as: UInt64.self)
          p.storeBytes(of: RecordCodec.checksum(UnsafeRawPointer(p)), toByteOffset: SegmentLayout.Slot.checksum - RecordCodec.base, as: UInt64.self)
        }
        publish(UnsafeRawPointer(p))
      }
    }
    let waitSince = source.load(fromByteOffset: R.waitSinceNs, as: UInt64.self)
    atomicWord(header + R.waitSinceNs).store(translate(waitSince), ordering: .relaxed)
    for offset in R.mirroredWords {
      atomicWord(header + offset).store(source.load(fromByteOffset: offset, as: UInt64.self), ordering: .relaxed)
    }
    atomicWord(header + R.sourceRecords).store(source.load(fromByteOffset: R.writeIndex, as: UInt64.self), ordering: .relaxed)
    atomicWord(header + R.forwardedRecords).store(m.load(fromByteOffset: F.forwardedRecords, as: UInt64.self), ordering: .releasing)
    heartbeat(nowNs: nowNs)
    var relay: ControlRelay? = nil
    if flags & F.relayFlag != 0 {
      let raw = m.load(fromByteOffset: F.relayDesired, as: UInt64.self)
      relay = ControlRelay(desired: DesiredState(rawValue: raw), checkpoints: m.load(fromByteOffset: F.relayCheckpoints, as: UInt64.self))
    }
    return (relay, flags & F.finalFlag != 0)
  }

  /// First message: the sender's identity words, this process as the forwarder, then `attached`.
  private func claimForwarded(from source: UnsafeRawPointer) {
    let m = Memory(base: header)
    m.set(R.pid, source.load(fromByteOffset: R.pid, as: UInt32.self))
    m.set(R.worldRank, UInt32(worldRank))
    (header + R.host).copyMemory(from: source + R.host, byteCount: R.hostCapacity)
    m.set(R.nodeIndex, source.load(fromByteOffset: R.nodeIndex, as: UInt32.self))
    m.set(R.flags, R.forwardedFlag)
    m.set(R.forwarderPid, UInt32(bitPattern: getpid()))
    let localRank = source.load(fromByteOffset: R.localRank, as: UInt32.self)
    atomicWord(header + R.localRank).store(UInt64(localRank) | UInt64(R.attachedValue) << 32, ordering: .releasing)
    forwardedAttached = true
  }
}

extension SegmentWriter {
  /// Applies a control request relayed from another node to this segment's control page, as a
  /// reader there would have written it: the desired state by compare-and-swap (stop stays
  /// final), checkpoint requests added to the counter.
  public func relayControl(_ relay: ControlRelay) {
    typealias C = SegmentLayout.Control
    let c = mapping.base + geometry.controlOffset
    if let desired = relay.desired {
      let word = atomicWord(c + C.desiredState)
      var current = word.load(ordering: .acquiring)
      while current != DesiredState.stop.rawValue || desired == .stop {
        let (done, original) = word.compareExchange(expected: current, desired: desired.rawValue, ordering: .acquiringAndReleasing)
        if done { break }
        current = original
      }
    }
    if relay.checkpoints > 0 {
      atomicWord(c + C.checkpointRequests).wrappingIncrement(by: relay.checkpoints, ordering: .acquiringAndReleasing)
    }
    atomicWord(c + C.writes).wrappingIncrement(ordering: .relaxed)
  }

  /// A control request written on this node's page since `seen` (the page's write counter and
  /// checkpoint counter when last looked at), to relay to world rank 0; updates `seen`. Nil when
  /// nothing was written. Two loads when nothing changed.
  public func takeControlWrites(since seen: inout (writes: UInt64, checkpoints: UInt64)) -> ControlRelay? {
    typealias C = SegmentLayout.Control
    let c = mapping.base + geometry.controlOffset
    let writes = atomicWord(c + C.writes).load(ordering: .acquiring)
    guard writes != seen.writes else { return nil }
    let checkpoints = atomicWord(c + C.checkpointRequests).load(ordering: .acquiring)
    let desired = DesiredState(rawValue: atomicWord(c + C.desiredState).load(ordering: .acquiring))
    let relay = ControlRelay(desired: desired, checkpoints: checkpoints &- seen.checkpoints)
    seen = (writes, checkpoints)
    return relay
  }

  /// Shows on this (non-first) node's control page what the job decided at a step boundary: the
  /// observed words, and the desired word itself unless a request written here since `seen` is
  /// still on its way (it must not be overwritten before it is relayed).
  public func reflectDecision(_ desired: DesiredState, seen: (writes: UInt64, checkpoints: UInt64)) {
    typealias C = SegmentLayout.Control
    let c = mapping.base + geometry.controlOffset
    atomicWord(c + C.observedDesiredState).store(desired.rawValue, ordering: .releasing)
    let word = atomicWord(c + C.desiredState)
    let current = word.load(ordering: .acquiring)
    if atomicWord(c + C.writes).load(ordering: .acquiring) == seen.writes && current != desired.rawValue {
      _ = word.compareExchange(expected: current, desired: desired.rawValue, ordering: .acquiringAndReleasing)
    }
  }
}

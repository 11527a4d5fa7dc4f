// Records a slow reader has not read yet, kept from being overwritten.
//
// A ring keeps its last `slotCount` records; a reader that falls further behind loses the
// oldest. The run recorder must not: it is a thread of world rank 0 that a loaded host may not
// schedule for longer than a small ring takes to fill. So world rank 0's training thread, at
// every step end (outside the step's compute), checks every ring of its segment and copies the
// records the reader has not consumed and that are about to be overwritten into a spill queue
// allocated once; the reader drains the queue before it reads the rings. The training thread
// never waits for the reader (no lock: a single-producer, single-consumer queue of atomics), it
// allocates nothing and does no I/O; when the reader keeps up it does one comparison per rank,
// every step for small rings and every 85th step for the default 4096 slots.
//
// Order: the rescuer copies records [from, to) of rank r, where `from` is past both what the
// reader consumed and what was rescued before, pushes them, then publishes `rescuedThrough[r]`
// = to (release). The reader reads every `rescuedThrough` first, then drains the queue (which
// then holds everything below those marks), then reads each ring from past both its own
// cursor and the mark. A record rescued while the reader reads the ring is drained next time
// and skipped there as already read (its index is below the reader's cursor).

import Atomics
import Glibc
import JobSchema

/// The spill queue between world rank 0's training thread (`rescue()`) and a slow reader of
/// the same segment (`drain`, then the reader's own `poll` from `readFrom(rank:)`).
public final class RingRescue: @unchecked Sendable {
  /// Entries the queue holds; the rescuer stops (and the reader counts losses) when it is full.
  public let capacity: Int
  private let reader: JobReader
  private let world: Int
  private let slots: UInt64
  /// The backlog the rescuer lets a ring hold: it rescues the records beyond it, so that a few
  /// steps' records (a step, an event, shard statistics) can land before the next rescue.
  private let keepInRing: UInt64
  /// Rescues run every this many calls: a step adds at most a few records to a ring (its step
  /// record, an event, shard statistics), so the rings are checked often enough that the
  /// `slots - keepInRing` records of headroom never fill between two checks (every call for
  /// small rings; every 85th for 4096 slots, sparing a wide job's rank 0 a pass over every
  /// rank header per step).
  private let checkEvery: Int
  /// Calls left until the next check (the rescuer's thread alone touches it).
  private var countdown = 0
  /// Per rank, two words: the reader's cursor (published by the reader), and the rescued mark.
  private let marks: UnsafeMutableRawPointer
  /// head (written by the rescuer), tail (by the reader), enabled, and records the rescuer
  /// found overwritten already.
  private let control: UnsafeMutableRawPointer
  private let entries: UnsafeMutableRawPointer
  private static let entrySize = 16 + SegmentLayout.Slot.payloadSize
  typealias S = SegmentLayout.Slot

  /// A rescuer and reader pair for the segment `reader` reads (its geometry; the reader's own
  /// records are read by the caller's `JobReader`). Allocates the queue once.
  public init(segment reader: JobReader, capacity: Int? = nil) {
    self.reader = reader
    world = reader.geometry.worldSize
    slots = UInt64(reader.geometry.slotCount)
    keepInRing = slots - Swift.max(slots / 4, 4)
    checkEvery = Swift.max(1, Int(slots - keepInRing) / 12)
    self.capacity = capacity ?? Swift.max(16_384, world * 64)
    marks = .allocate(byteCount: 16 * world, alignment: 64)
    marks.initializeMemory(as: UInt8.self, repeating: 0, count: 16 * world)
    control = .allocate(byteCount: 4 * 64, alignment: 64)
    control.initializeMemory(as: UInt8.self, repeating: 0, count: 4 * 64)
    entries = .allocate(byteCount: self.capacity * Self.entrySize, alignment: 64)
    atomicWord(control + 128).store(1, ordering: .releasing)
  }

  deinit {
    marks.deallocate()
    control.deallocate()
    entries.deallocate()
  }

  private func cursor(_ r: Int) -> UnsafeAtomic<UInt64> { atomicWord(marks + 16 * r) }
  private func rescued(_ r: Int) -> UnsafeAtomic<UInt64> { atomicWord(marks + 16 * r + 8) }
  private var head: UnsafeAtomic<UInt64> { atomicWord(control) }
  private var tail: UnsafeAtomic<UInt64> { atomicWord(control + 64) }
  private var enabledWord: UnsafeAtomic<UInt64> { atomicWord(control + 128) }
  private var overwrittenWord: UnsafeAtomic<UInt64> { atomicWord(control + 192) }

  /// Ends rescuing (the reader has finished): later `rescue()` calls return at once.
  public func disable() { enabledWord.store(0, ordering: .releasing) }

  /// Records the rescuer found overwritten before it could copy them (a writer more than a ring
  /// ahead of the rescuer: only a ring far smaller than a step's records).
  public var overwritten: UInt64 { overwrittenWord.load(ordering: .relaxed) }

  // MARK: Rescuer (world rank 0's training thread)

  /// Copies every record a ring is about to overwrite that the reader has not consumed into the
  /// queue. No allocation, no lock, no system call.
  public func rescue() {
    guard enabledWord.load(ordering: .relaxed) != 0 else { return }
    countdown -= 1
    guard countdown <= 0 else { return }
    countdown = checkEvery
    let base = reader.mapping.base
    for r in 0..<world {
      let written = atomicWord(base + reader.geometry.rankHeaderOffset(r) + SegmentLayout.RankHeader.writeIndex)
        .load(ordering: .acquiring)
      guard written > keepInRing else { continue }
      let to = written - keepInRing
      var from = Swift.max(cursor(r).load(ordering: .acquiring), rescued(r).load(ordering: .relaxed))
      guard from < to else { continue }
      if written - from > slots {
        overwrittenWord.wrappingIncrement(by: written - slots - from, ordering: .relaxed)
        from = written - slots
      }
      let ring = base + reader.geometry.ringOffset(r)
      var h = head.load(ordering: .relaxed)
      let t = tail.load(ordering: .acquiring)
      var i = from
      while i < to && h - t < UInt64(capacity) {
        let slot = ring + Int(truncatingIfNeeded: (i & (slots - 1)) &* UInt64(S.size))
        let seq = atomicWord(slot + S.seq)
        let want = 2 &* i &+ 2
        guard seq.load(ordering: .acquiring) == want else {
          // overwritten already (or being written by a later lap)
          overwrittenWord.wrappingIncrement(ordering: .relaxed)
          i &+= 1
          continue
        }
        let entry = entries + Int(h % UInt64(capacity)) * Self.entrySize
        copyPayload(from: slot + S.payload, to: entry + 16)
        atomicMemoryFence(ordering: .acquiring)
        if seq.load(ordering: .relaxed) == want {
          entry.storeBytes(of: UInt64(r), as: UInt64.self)
          entry.storeBytes(of: i, toByteOffset: 8, as: UInt64.self)
          h &+= 1
        } else {
          overwrittenWord.wrappingIncrement(ordering: .relaxed)
        }
        i &+= 1
      }
      head.store(h, ordering: .releasing)
      rescued(r).store(i, ordering: .releasing)
      if i < to { return }  // the queue is full
    }
  }

  // MARK: Reader (the recorder's thread)

  /// Every rank's rescued mark, read before `drain` (see the file's comment).
  public func rescuedMarks() -> [UInt64] { (0..<world).map { rescued($0).load(ordering: .acquiring) } }

  /// Calls `body` with every rescued record whose index is at or past `cursors[rank]`, in the
  /// order rescued (ring order within a rank), advancing `cursors`; skips the others (read
  /// from the ring already) and, as a ring read does, records whose checksum or rank do not hold.
  public func drain(cursors: inout [UInt64], _ body: (TelemetryRecord) -> Void) {
    let h = head.load(ordering: .acquiring)
    var t = tail.load(ordering: .relaxed)
    while t < h {
      let entry = entries + Int(t % UInt64(capacity)) * Self.entrySize
      let r = Int(entry.load(as: UInt64.self))
      let index = entry.load(fromByteOffset: 8, as: UInt64.self)
      if r < world && index >= cursors[r] {
        if case .record(let rec) = RecordCodec.decode(UnsafeRawPointer(entry + 16), index: index), rec.rank == r { body(rec) }
        cursors[r] = index + 1
      }
      t &+= 1
    }
    tail.store(t, ordering: .releasing)
  }

  /// Publishes how far the reader has consumed rank `rank`'s ring.
  public func consumed(rank: Int, through next: UInt64) { cursor(rank).store(next, ordering: .releasing) }
}

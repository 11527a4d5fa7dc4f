import Atomics
import CFutex
import Glibc
import JobSchema

/// The job side of a segment: creates it (local rank 0) or opens it (the other local ranks),
/// and hands out one `RankWriter` per rank that writes in this process. Also usable without MPI
/// to build synthetic jobs (tests, benchmarks, demos).
public final class SegmentWriter {
  let mapping: MappedSegment
  let geometry: SegmentGeometry
  /// The job's published description.
  public let info: JobInfo

  private init(mapping: MappedSegment, header: ValidatedHeader) {
    self.mapping = mapping
    self.geometry = header.geometry
    self.info = header.info
  }

  /// Creates the job's segment exclusively (`O_EXCL`, mode 0600), reserves its memory and
  /// publishes the description; `ready` is written last.
  /// - Parameter slotCount: ring slots per rank, a power of two (default 4096).
  /// - Throws: `TelemetryError` (`.alreadyExists`, `.noSpace`, `.invalidArgument`, ...).
  public static func create(_ d: JobDescription, in space: SegmentSpace, slotCount: Int = SegmentLayout.defaultSlotCount) throws -> SegmentWriter {
    if let p = SegmentGeometry.problem(worldSize: d.worldSize, tp: d.tp, shardCount: d.shards.count, slotCount: slotCount) {
      throw TelemetryError.invalidArgument(p)
    }
    guard d.dp >= 1 && d.tp * d.dp == d.worldSize else {
      throw TelemetryError.invalidArgument("t \(d.tp) × d \(d.dp) must equal the world size \(d.worldSize)")
    }
    guard d.totalSteps >= 0 else { throw TelemetryError.invalidArgument("total steps \(d.totalSteps) < 0") }
    let model = d.model
    for (_, field) in SegmentGeometry.modelWords {
      let v = model[keyPath: field]
      guard v >= 0 && v <= Int(UInt32.max) else { throw TelemetryError.invalidArgument("model dimension \(v) out of range") }
    }
    for s in d.shards { try checkShard(s, tp: d.tp) }
    let g = SegmentGeometry(worldSize: d.worldSize, tp: d.tp, shardCount: d.shards.count, slotCount: slotCount)
    let mapping = try MappedSegment.create(job: d.name, in: space, size: g.totalSize)
    let m = Memory(base: mapping.base)
    typealias H = SegmentLayout.Header
    // posix_fallocate zero-fills; write the fields, then the magic, then `ready`.
    m.set(H.versionMajor, SegmentLayout.versionMajor)
    m.set(H.versionMinor, SegmentLayout.versionMinor)
    for (offset, value, _) in g.headerWords { m.set(offset, UInt64(value)) }
    m.set(H.slotCount, UInt64(slotCount))
    m.set(H.creationTimeNs, telemetryRealtimeNanos())
    var rng = SystemRandomNumberGenerator()
    m.set(H.incarnation, rng.next() as UInt64)
    m.set(H.ownerUID, geteuid())
    m.set(H.worldSize, UInt32(d.worldSize))
    m.set(H.tp, UInt32(d.tp))
    m.set(H.dp, UInt32(d.dp))
    m.set(H.totalSteps, UInt64(d.totalSteps))
    for (offset, field) in SegmentGeometry.modelWords { m.set(offset, UInt32(model[keyPath: field])) }
    m.set(H.shardCount, UInt32(d.shards.count))
    m.set(H.shardEntrySize, UInt32(g.shardEntrySize))
    m.set(H.creatorPid, UInt32(bitPattern: getpid()))
    m.setText(H.jobName, d.name, capacity: H.jobNameCapacity)
    m.setText(H.presetName, d.preset, capacity: H.presetNameCapacity)
    m.set(H.features, d.features.rawValue)
    for (i, s) in d.shards.enumerated() {
      writeShard(s, m, at: g.jobDescriptionOffset + i * g.shardEntrySize)
    }
    atomicWord(mapping.base + H.magic).store(SegmentLayout.magic, ordering: .releasing)
    atomicWord(mapping.base + H.ready).store(SegmentLayout.readyValue, ordering: .releasing)
    let header = try ValidatedHeader.validate(base: mapping.base, size: mapping.size, job: d.name, checkOwner: false)
    return SegmentWriter(mapping: mapping, header: header)
  }

  /// Opens a segment another process created (after the caller's barrier).
  /// - Throws: `TelemetryError` when it is missing, not ready or invalid.
  public static func open(job: String, in space: SegmentSpace) throws -> SegmentWriter {
    let mapping = try MappedSegment.open(job: job, in: space, writable: true)
    let header = try ValidatedHeader.validate(base: mapping.base, size: mapping.size, job: job, checkOwner: true,
                                              fileOwner: mapping.fileOwner, allocatedBytes: mapping.allocatedBytes)
    return SegmentWriter(mapping: mapping, header: header)
  }

  /// Removes a job's segment name from /dev/shm (mappings stay valid until unmapped).
  public static func remove(job: String, in space: SegmentSpace) throws { try MappedSegment.unlink(job: job, in: space) }

  /// Records that world rank `worldRank` runs on node `node`, in a header no process of this
  /// node claims (its rank runs and reports on that node): a view of this node's segment can
  /// then say where it is. The creating process calls it before any rank attaches.
  public func recordNode(ofRank worldRank: Int, node: Int) {
    guard worldRank >= 0 && worldRank < geometry.worldSize, geometry.rankHeaderStride > SegmentLayout.RankHeader.nodeIndex else { return }
    Memory(base: mapping.base + geometry.rankHeaderOffset(worldRank)).set(SegmentLayout.RankHeader.nodeIndex, UInt32(truncatingIfNeeded: node))
  }

  /// Claims world rank `worldRank`'s header and ring for this process: records pid, host and
  /// local rank, and marks the rank attached. State starts as `.starting`.
  /// `nodeIndex` is the rank's node (0 on world rank 0's node).
  public func rankWriter(worldRank: Int, localRank: Int = 0, nodeIndex: Int = 0) throws -> RankWriter {
    guard worldRank >= 0 && worldRank < geometry.worldSize else {
      throw TelemetryError.invalidArgument("rank \(worldRank) outside 0..<\(geometry.worldSize)")
    }
    return RankWriter(segment: self, worldRank: worldRank, localRank: localRank, nodeIndex: nodeIndex)
  }

  /// The header and ring of world rank `worldRank`, a rank on another node whose records this
  /// process forwards here (see `RankWriter.applyForwarded`). Claims nothing until the first
  /// message arrives: the rank stays unattached until then.
  public func forwardedRankWriter(worldRank: Int) throws -> RankWriter {
    guard worldRank >= 0 && worldRank < geometry.worldSize else {
      throw TelemetryError.invalidArgument("rank \(worldRank) outside 0..<\(geometry.worldSize)")
    }
    return RankWriter(segment: self, forwardedRank: worldRank)
  }

  /// Reads the control page (world rank 0 only): desired-state word and checkpoint counter.
  /// Also records them as observed, so readers can see the job noticed.
  public func pollControl() -> (desired: DesiredState, checkpointRequests: UInt64) {
    typealias C = SegmentLayout.Control
    let c = mapping.base + geometry.controlOffset
    let raw = atomicWord(c + C.desiredState).load(ordering: .acquiring)
    let ck = atomicWord(c + C.checkpointRequests).load(ordering: .acquiring)
    // Readers store only known values (by compare-and-swap); a word holding anything else was
    // damaged, and the job keeps running rather than pausing or stopping on garbage. The value
    // acted on is recorded as observed, so readers see what the job made of it.
    let desired = DesiredState(rawValue: raw) ?? .run
    atomicWord(c + C.observedDesiredState).store(desired.rawValue, ordering: .releasing)
    atomicWord(c + C.observedCheckpointRequests).store(ck, ordering: .releasing)
    return (desired, ck)
  }

  // MARK: Paused ranks' sleep (control page words `pausedWake` and `pausedSignal`)

  private func controlWord32(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
    (mapping.base + geometry.controlOffset + offset).assumingMemoryBound(to: UInt32.self)
  }

  private func atomic32(_ offset: Int) -> UnsafeAtomic<UInt32> {
    UnsafeAtomic<UInt32>(at: UnsafeMutableRawPointer(controlWord32(offset)).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
  }

  /// The wake word now: a rank about to sleep remembers it (`sleepWhilePaused`).
  public func pausedWakeGeneration() -> UInt32 {
    atomic32(SegmentLayout.Control.pausedWake).load(ordering: .acquiring)
  }

  /// Node leader: one more wake; every rank in `sleepWhilePaused` on this segment returns.
  public func wakePausedRanks() {
    atomic32(SegmentLayout.Control.pausedWake).wrappingIncrement(ordering: .releasing)
    _ = cfutex_wake_all(controlWord32(SegmentLayout.Control.pausedWake))
  }

  /// Sleeps (futex(2), no polling) while the wake word still equals `generation`, at most
  /// `timeoutNs`. True when it differs: the leader woke the node since `generation`.
  public func sleepWhilePaused(generation: UInt32, timeoutNs: Int64) -> Bool {
    let word = atomic32(SegmentLayout.Control.pausedWake)
    if word.load(ordering: .acquiring) != generation { return true }
    _ = cfutex_wait(controlWord32(SegmentLayout.Control.pausedWake), generation, max(0, timeoutNs))
    return word.load(ordering: .acquiring) != generation
  }

  /// A paused rank's stop signal, for its node leader: the word keeps the largest posted.
  public func postPausedSignal(_ signal: UInt32) {
    let word = atomic32(SegmentLayout.Control.pausedSignal)
    var old = word.load(ordering: .relaxed)
    while old < signal {
      let (done, now) = word.weakCompareExchange(expected: old, desired: signal, ordering: .acquiringAndReleasing)
      if done { return }
      old = now
    }
  }

  /// The largest stop signal posted on this segment (0 none).
  public func pausedSignal() -> UInt32 { atomic32(SegmentLayout.Control.pausedSignal).load(ordering: .acquiring) }

  /// Forgets posted signals (a word left by an earlier process of the job).
  public func clearPausedSignal() { atomic32(SegmentLayout.Control.pausedSignal).store(0, ordering: .releasing) }

  static func checkShard(_ s: ShardedTensor, tp: Int) throws {
    typealias S = SegmentLayout.Shard
    func bad(_ why: String) -> TelemetryError { .invalidArgument("shard '\(s.name)': \(why)") }
    guard s.shape.count >= 1 && s.shape.count <= S.maxDimensions else { throw bad("\(s.shape.count) dimensions (1...4)") }
    guard s.shape.allSatisfy({ $0 >= 0 && $0 <= Int(Int32.max) }) else { throw bad("dimension out of range") }
    if let d = s.splitDim { guard d >= 0 && d < s.shape.count else { throw bad("split dimension \(d)") } }
    guard s.ranks.count == tp else { throw bad("\(s.ranks.count) rank parts, expected t = \(tp)") }
    guard s.rankDescriptions.count == tp || s.rankDescriptions.isEmpty else { throw bad("\(s.rankDescriptions.count) descriptions") }
    for rs in s.ranks {
      guard rs.count <= S.maxRanges else { throw bad("\(rs.count) ranges (at most 4)") }
      guard rs.allSatisfy({ $0.lowerBound >= 0 && $0.upperBound <= Int(Int32.max) }) else { throw bad("range out of bounds") }
    }
  }

  static func writeShard(_ s: ShardedTensor, _ m: Memory, at off: Int) {
    typealias S = SegmentLayout.Shard
    m.setText(off + S.name, s.name, capacity: S.nameCapacity)
    m.set(off + S.dimensionCount, UInt32(s.shape.count))
    m.set(off + S.split, s.split.rawValue)
    m.set(off + S.splitDim, Int32(s.splitDim ?? -1))
    m.set(off + S.rankCount, UInt32(s.ranks.count))
    for (k, v) in s.shape.enumerated() { m.set(off + S.shape + 8 * k, Int64(v)) }
    for (r, rs) in s.ranks.enumerated() {
      let p = off + S.headerSize + r * S.rankPartSize
      m.set(p + S.rangeCount, UInt32(rs.count))
      for (k, range) in rs.enumerated() {
        m.set(p + S.ranges + 16 * k, Int64(range.lowerBound))
        m.set(p + S.ranges + 16 * k + 8, Int64(range.upperBound))
      }
      let text = r < s.rankDescriptions.count ? s.rankDescriptions[r] : ""
      m.setText(p + S.description, text, capacity: S.descriptionCapacity)
    }
  }
}

/// One rank's writer: its ring (one writer per ring) and its header. Never blocks; the record
/// paths make no system call and no allocation.
public final class RankWriter {
  /// Keeps the mapping alive.
  private let segment: SegmentWriter
  let header: UnsafeMutableRawPointer
  private let ring: UnsafeMutableRawPointer
  private let mask: UInt64
  /// Index of the next record to write.
  private var next: UInt64
  /// World rank this writer writes for.
  public let worldRank: Int
  private let rank32: UInt32

  typealias R = SegmentLayout.RankHeader
  typealias S = SegmentLayout.Slot

  /// Index of the node this rank is on, as published in its header.
  /// Set when this ring's records also go to world rank 0's node: every published payload is
  /// appended to its pending message.
  public var forwarder: RecordForwarder?
  /// Whether this writer keeps another node's rank from its messages (not yet attached until
  /// the first one).
  let keepsForwardedRank: Bool
  var forwardedAttached = false

  /// Rank `worldRank`'s ring and header, nothing claimed yet (a forwarded rank's writer keeps
  /// it so until its first message).
  init(segment: SegmentWriter, forwardedRank worldRank: Int, forwarded: Bool = true) {
    self.segment = segment
    self.worldRank = worldRank
    self.rank32 = UInt32(worldRank)
    let g = segment.geometry
    header = segment.mapping.base + g.rankHeaderOffset(worldRank)
    ring = segment.mapping.base + g.ringOffset(worldRank)
    mask = UInt64(g.slotCount - 1)
    next = atomicWord(header + R.writeIndex).load(ordering: .acquiring)
    keepsForwardedRank = forwarded
  }

  /// This process's own rank: claims the header (pid, host, local rank, node) at once.
  convenience init(segment: SegmentWriter, worldRank: Int, localRank: Int, nodeIndex: Int) {
    self.init(segment: segment, forwardedRank: worldRank, forwarded: false)
    let m = Memory(base: header)
    m.set(R.pid, UInt32(bitPattern: getpid()))
    m.set(R.worldRank, UInt32(worldRank))
    m.set(R.localRank, UInt32(truncatingIfNeeded: localRank))
    var host = [CChar](repeating: 0, count: 256)
    gethostname(&host, 255)
    let hostName = host.withUnsafeBufferPointer { b in
      String(decoding: UnsafeRawBufferPointer(b).prefix { $0 != 0 }, as: UTF8.self)
    }
    m.setText(R.host, hostName, capacity: R.hostCapacity)
    m.set(R.nodeIndex, UInt32(truncatingIfNeeded: nodeIndex))
    atomicWord(header + R.state).store(RunState.starting.rawValue, ordering: .relaxed)
    atomicWord(header + R.heartbeatNs).store(telemetryMonotonicNanos(), ordering: .relaxed)
    atomicWord(header + R.ackedDesiredState).store(DesiredState.run.rawValue, ordering: .relaxed)
    // `attached` shares a word with localRank; publish it with a release store of that word.
    let attachedWord = UInt64(UInt32(truncatingIfNeeded: localRank)) | UInt64(R.attachedValue) << 32
    atomicWord(header + R.localRank).store(attachedWord, ordering: .releasing)
  }

  /// Records published so far.
  public var writeIndex: UInt64 { next }

  /// Publishes one step's metrics, stamped `timestampNs` (CLOCK_MONOTONIC ns), as a step
  /// record (seqlock protocol, see docs/TELEMETRY.md). Also sets the rank's last step. No system
  /// call, no allocation.
  @inline(__always)
  public func writeStep(_ m: StepMetrics, timestampNs: UInt64) {
    // Encoded straight into the slot (every payload byte is written): no stack copy to store,
    // reload and store again.
    publish { RecordCodec.encode(m, timestampNs: timestampNs, rank: rank32, into: $0) }
    atomicWord(header + R.lastStep).store(UInt64(truncatingIfNeeded: m.step), ordering: .relaxed)
  }

  /// Publishes a step record built elsewhere (synthetic jobs, tests); its `rank` and `index`
  /// are ignored: the record is this writer's next.
  @inline(__always)
  public func writeStep(_ r: StepRecord) { writeStep(r.metrics, timestampNs: r.timestampNs) }

  /// Publishes one event record. The text is cut to 208 UTF-8 bytes.
  public func writeEvent(_ kind: EventKind, step: Int, text: String = "") {
    withUnsafeTemporaryAllocation(byteCount: S.payloadSize, alignment: 8) { buf in
      let p = buf.baseAddress.unsafelyUnwrapped
      RecordCodec.encode(
        kind: kind, step: step, text: text, timestampNs: telemetryMonotonicNanos(), rank: rank32, into: p)
      publish(UnsafeRawPointer(p))
    }
  }

  /// Publishes the norms of this rank's shards: `values` holds (weight norm, gradient norm,
  /// update ratio) per tensor from `firstTensor`, at most `Slot.statsCapacity` tensors.
  public func writeTensorStats(step: Int, firstTensor: Int, values: UnsafeBufferPointer<Float>) {
    withUnsafeTemporaryAllocation(byteCount: S.payloadSize, alignment: 8) { buf in
      let p = buf.baseAddress.unsafelyUnwrapped
      RecordCodec.encodeTensorStats(step: step, firstTensor: firstTensor, values: values,
                                    timestampNs: telemetryMonotonicNanos(), rank: rank32, into: p)
      publish(UnsafeRawPointer(p))
    }
  }

  /// Seqlock write of record `next` from a payload built elsewhere (forwarded records).
  @inline(__always)
  func publish(_ payload: UnsafeRawPointer) {
    publish { copyPayload(from: payload, to: $0) }
  }

  /// Seqlock write of record `next`: seq = 2i+1 (relaxed), release fence, `fill` writes the
  /// whole 248-byte payload into the slot, seq = 2i+2 (release), then the head = i+1 (release).
  /// With a forwarder, the slot's payload is then appended to its message.
  @inline(__always)
  func publish(_ fill: (UnsafeMutableRawPointer) -> Void) {
    let i = next
    let slot = ring + Int(truncatingIfNeeded: (i & mask) &* UInt64(S.size))
    let seq = atomicWord(slot + S.seq)
    seq.store(2 &* i &+ 1, ordering: .relaxed)
    atomicMemoryFence(ordering: .releasing)
    fill(slot + S.payload)
    seq.store(2 &* i &+ 2, ordering: .releasing)
    forwarder?.append(UnsafeRawPointer(slot + S.payload))
    next = i &+ 1
    atomicWord(header + R.writeIndex).store(next, ordering: .releasing)
    // Touch the next slot's four cache lines now, so the next record's stores find them in
    // L1 instead of waiting for them (relaxed loads: never optimized away, no ordering cost).
    let ahead = ring + Int(truncatingIfNeeded: (next & mask) &* UInt64(S.size))
    _ = atomicWord(ahead).load(ordering: .relaxed)
    _ = atomicWord(ahead + 64).load(ordering: .relaxed)
    _ = atomicWord(ahead + 128).load(ordering: .relaxed)
    _ = atomicWord(ahead + 192).load(ordering: .relaxed)
  }

  /// Stores a heartbeat time (CLOCK_MONOTONIC ns; pass one you already read to avoid a clock
  /// call).
  @inline(__always)
  public func heartbeat(nowNs: UInt64 = telemetryMonotonicNanos()) {
    atomicWord(header + R.heartbeatNs).store(nowNs, ordering: .relaxed)
  }

  /// Publishes that this rank is about to block in a collective: `kind` (`CollectiveWait.Kind`
  /// raw value), its ordinal among this step's collectives of that kind, and the step. Two
  /// stores, no system call.
  @inline(__always)
  public func enterCollective(kind: UInt8, ordinal: Int, step: Int, nowNs: UInt64) {
    atomicWord(header + R.waitSinceNs).store(nowNs, ordering: .relaxed)
    let word = UInt64(kind) | UInt64(truncatingIfNeeded: min(ordinal, 0xFF_FFFF)) << 8
      | UInt64(truncatingIfNeeded: step) << 32
    atomicWord(header + R.waitingIn).store(word, ordering: .releasing)
  }

  /// Publishes that this rank left its collective.
  @inline(__always)
  public func leaveCollective() {
    atomicWord(header + R.waitingIn).store(0, ordering: .releasing)
  }

  /// Stores the rank's run state.
  public func setState(_ s: RunState) {
    atomicWord(header + R.state).store(s.rawValue, ordering: .releasing)
  }

  /// Acknowledges that this rank applied `desired` at `step`.
  @inline(__always)
  public func acknowledge(_ desired: DesiredState, step: Int) {
    atomicWord(header + R.ackedStep).store(UInt64(truncatingIfNeeded: step), ordering: .relaxed)
    atomicWord(header + R.ackedDesiredState).store(desired.rawValue, ordering: .releasing)
  }

  /// Counts a saved checkpoint at `step`.
  public func checkpointSaved(step: Int) {
    atomicWord(header + R.lastCheckpointStep).store(UInt64(truncatingIfNeeded: step), ordering: .relaxed)
    atomicWord(header + R.checkpointsSaved).wrappingIncrement(ordering: .releasing)
  }

  /// Reads the control page (only meaningful on world rank 0).
  public func pollControl() -> (desired: DesiredState, checkpointRequests: UInt64) { segment.pollControl() }

  /// Desired state this rank last acknowledged (only this writer stores that word, always a
  /// known value; run if it was damaged).
  public var acknowledgedState: DesiredState {
    DesiredState(rawValue: atomicWord(header + R.ackedDesiredState).load(ordering: .relaxed)) ?? .run
  }
}

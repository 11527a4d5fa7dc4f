import Atomics
import Glibc
import JobSchema

/// An atomic view of the 8-byte word at `p` (which must be 8-aligned and mapped).
@inline(__always)
func atomicWord(_ p: UnsafeMutableRawPointer) -> UnsafeAtomic<UInt64> {
  UnsafeAtomic<UInt64>(at: p.assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
}

/// Where every area lies for a given world size, TP degree, shard count and ring length.
/// Creators compute it; readers recompute it from the header and require the header's offsets
/// to match exactly.
struct SegmentGeometry: Equatable {
  static let maxWorldSize = 4096
  static let maxSlotCount = 1 << 20
  static let minSlotCount = 16
  static let maxShardCount = 1024

  /// The most ring bytes (all ranks together) a reader accepts: this machine's physical memory.
  /// A job's segment lives in /dev/shm, which is memory, and its creator allocates every byte,
  /// so no real job's rings are larger; a crafted header claiming more (4096 ranks × 2²⁰ slots
  /// = 1 TiB) is refused before any ring is read, whatever its file's allocation says. A reader
  /// then holds at most one ring's records per rank per poll.
  static let readerRingCap: Int = {
    let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
    return pages > 0 && pageSize > 0 ? pages.multipliedReportingOverflow(by: pageSize).partialValue : Int.max
  }()

  let worldSize: Int
  let tp: Int
  let shardCount: Int
  let slotCount: Int
  /// Bytes per rank header: 256 from minor version 2, 128 before (no wait words).
  var rankHeaderStride: Int = SegmentLayout.RankHeader.stride

  var shardEntrySize: Int { SegmentLayout.Shard.entrySize(tp: tp) }
  var jobDescriptionOffset: Int { SegmentLayout.Header.size }
  var jobDescriptionSize: Int { max(Self.roundUp(shardCount * shardEntrySize), SegmentLayout.pageSize) }
  var controlOffset: Int { jobDescriptionOffset + jobDescriptionSize }
  var rankHeadersOffset: Int { controlOffset + SegmentLayout.Control.size }
  var rankHeadersSize: Int { Self.roundUp(worldSize * rankHeaderStride) }
  var ringsOffset: Int { rankHeadersOffset + rankHeadersSize }
  var ringStride: Int { slotCount * SegmentLayout.Slot.size }
  var totalSize: Int { ringsOffset + worldSize * ringStride }

  func rankHeaderOffset(_ r: Int) -> Int { rankHeadersOffset + r * rankHeaderStride }
  func ringOffset(_ r: Int) -> Int { ringsOffset + r * ringStride }

  /// The header's u64 geometry words (offset, value, name): the creator writes them, readers
  /// require them to match what they recompute. The slot count is not among them: readers take
  /// it from the header.
  var headerWords: [(offset: Int, value: Int, what: String)] {
    typealias H = SegmentLayout.Header
    return [
      (H.headerSize, H.size, "header size"),
      (H.jobDescriptionOffset, jobDescriptionOffset, "job-description offset"),
      (H.jobDescriptionSize, jobDescriptionSize, "job-description size"),
      (H.controlOffset, controlOffset, "control offset"),
      (H.controlSize, SegmentLayout.Control.size, "control size"),
      (H.rankHeadersOffset, rankHeadersOffset, "rank-header offset"),
      (H.rankHeaderStride, rankHeaderStride, "rank-header stride"),
      (H.ringsOffset, ringsOffset, "ring offset"),
      (H.ringStride, ringStride, "ring stride"),
      (H.slotSize, SegmentLayout.Slot.size, "slot size"),
      (H.totalSize, totalSize, "total size"),
    ]
  }

  /// The model shape's fields and their u32 header words, for the creator and the readers.
  static var modelWords: [(offset: Int, field: WritableKeyPath<ModelShape, Int>)] {
    typealias H = SegmentLayout.Header
    return [
      (H.modelLayers, \.layers), (H.modelHeads, \.heads), (H.modelChannels, \.channels), (H.modelVocab, \.vocab),
      (H.modelPaddedVocab, \.paddedVocab), (H.modelMaxSeq, \.maxSeq), (H.modelBatch, \.batch), (H.modelSeq, \.seq),
    ]
  }

  static func roundUp(_ n: Int) -> Int { (n + SegmentLayout.pageSize - 1) / SegmentLayout.pageSize * SegmentLayout.pageSize }

  /// Checks the ranges; returns a description of the first problem.
  static func problem(worldSize: Int, tp: Int, shardCount: Int, slotCount: Int) -> String? {
    if worldSize < 1 || worldSize > maxWorldSize { return "world size \(worldSize) outside 1...\(maxWorldSize)" }
    if tp < 1 || tp > worldSize { return "tp \(tp) outside 1...\(worldSize)" }
    if shardCount < 0 || shardCount > maxShardCount { return "shard count \(shardCount) outside 0...\(maxShardCount)" }
    if slotCount < minSlotCount || slotCount > maxSlotCount || slotCount & (slotCount - 1) != 0 {
      return "ring slot count \(slotCount) is not a power of two in \(minSlotCount)...\(maxSlotCount)"
    }
    return nil
  }
}

/// The validated header of a mapped segment.
struct ValidatedHeader {
  let geometry: SegmentGeometry
  let info: JobInfo

  typealias H = SegmentLayout.Header

  /// Validates everything a reader relies on, in the order docs/TELEMETRY.md lists the refusals.
  /// Never reads outside `[base, base + size)`. Without `requireDescription`, a damaged shard
  /// table leaves `info.shards` empty instead of refusing (control needs only the header).
  /// `fileOwner` is the file's `st_uid` (what `checkOwner` compares with this user: the header's
  /// owner field is written by whoever can write the file); `allocatedBytes` the file's bytes
  /// backed by memory (a ready segment claiming more is a crafted sparse file).
  static func validate(base: UnsafeMutableRawPointer, size: Int, job: String, checkOwner: Bool,
                       requireDescription: Bool = true, fileOwner: UInt32 = geteuid(),
                       allocatedBytes: Int = Int.max, ringCap: Int = SegmentGeometry.readerRingCap) throws -> ValidatedHeader {
    let m = Memory(base: base)
    guard size >= 8 else { throw TelemetryError.truncated(job: job, actual: size, expected: H.size) }
    let magic = atomicWord(base + H.magic).load(ordering: .acquiring)
    if magic == 0 { throw TelemetryError.notReady(job) }
    guard magic == SegmentLayout.magic else { throw TelemetryError.wrongMagic(job) }
    guard size >= H.size else { throw TelemetryError.truncated(job: job, actual: size, expected: H.size) }
    let major = m.u32(H.versionMajor)
    guard major == SegmentLayout.versionMajor else {
      throw TelemetryError.versionMismatch(job: job, found: major, expected: SegmentLayout.versionMajor)
    }
    guard atomicWord(base + H.ready).load(ordering: .acquiring) == SegmentLayout.readyValue else {
      throw TelemetryError.notReady(job)
    }
    let claimed = m.u64(H.totalSize)
    guard claimed <= UInt64(size) else {
      throw TelemetryError.truncated(job: job, actual: size, expected: Int(clamping: claimed))
    }
    if checkOwner && fileOwner != geteuid() {
      throw TelemetryError.foreignOwner(job: job, owner: fileOwner, me: geteuid())
    }
    let owner = fileOwner
    // rings larger than this machine's memory cannot be a job's (checked before the sparse
    // check, so the line names the claim, not only the file's allocation)
    let claimedWorld = UInt64(m.u32(H.worldSize)), claimedSlots = m.u64(H.slotCount)
    let ringBytes = claimedWorld.multipliedReportingOverflow(by: min(claimedSlots, UInt64(Int32.max)) * UInt64(SegmentLayout.Slot.size))
    if ringBytes.overflow || ringBytes.partialValue > UInt64(ringCap) {
      throw TelemetryError.corrupt(
        job: job, detail: "its header claims \(claimedWorld) rings of \(claimedSlots) slots, \(Self.gib(ringBytes.partialValue, overflow: ringBytes.overflow)), "
          + "more than this machine's \(Self.gib(UInt64(ringCap), overflow: false)) of memory")
    }
    // the creator allocates every byte before it marks the segment ready (posix_fallocate);
    // a page's worth of slack covers file systems that count blocks differently
    if UInt64(allocatedBytes) &+ 4096 < claimed {
      throw TelemetryError.corrupt(
        job: job, detail: "a sparse file: \(allocatedBytes) of the \(claimed) bytes its header claims are allocated")
    }
    func corrupt(_ d: String) -> TelemetryError { .corrupt(job: job, detail: d) }
    let worldSize = Int(m.u32(H.worldSize))
    let tp = Int(m.u32(H.tp))
    let dp = Int(m.u32(H.dp))
    let shardCount = Int(m.u32(H.shardCount))
    let slots = m.u64(H.slotCount)
    guard slots <= UInt64(SegmentGeometry.maxSlotCount) else { throw corrupt("ring slot count \(slots)") }
    if let p = SegmentGeometry.problem(worldSize: worldSize, tp: tp, shardCount: shardCount, slotCount: Int(slots)) {
      throw corrupt(p)
    }
    guard dp >= 1 && tp * dp == worldSize else { throw corrupt("t \(tp) × d \(dp) ≠ world size \(worldSize)") }
    // minor versions before 2 had 128-byte rank headers
    let stride = m.u32(H.versionMinor) < 2 ? 128 : SegmentLayout.RankHeader.stride
    let g = SegmentGeometry(
      worldSize: worldSize, tp: tp, shardCount: shardCount, slotCount: Int(slots), rankHeaderStride: stride)
    for (off, want, what) in g.headerWords where m.u64(off) != UInt64(want) {
      throw corrupt("\(what) \(m.u64(off)), expected \(want)")
    }
    guard Int(m.u32(H.shardEntrySize)) == g.shardEntrySize else { throw corrupt("shard entry size") }
    guard g.totalSize <= size else { throw TelemetryError.truncated(job: job, actual: size, expected: g.totalSize) }

    var model = ModelShape(layers: 0, heads: 0, channels: 0, vocab: 0, paddedVocab: 0, maxSeq: 0, batch: 0, seq: 0)
    for (off, field) in SegmentGeometry.modelWords { model[keyPath: field] = Int(m.u32(off)) }
    let shards: [ShardedTensor]
    do {
      shards = try (0..<shardCount).map { i in
        try parseShard(m, at: g.jobDescriptionOffset + i * g.shardEntrySize, tp: tp, job: job)
      }
    } catch where !requireDescription {
      shards = []
    }
    let totalSteps = m.u64(H.totalSteps)
    let desc = JobDescription(
      name: m.text(H.jobName, capacity: H.jobNameCapacity), model: model,
      preset: m.text(H.presetName, capacity: H.presetNameCapacity), worldSize: worldSize,
      tp: tp, dp: dp, totalSteps: Int(clamping: totalSteps), shards: shards,
      features: RunFeatures(rawValue: m.u32(H.versionMinor) >= 3 ? m.u64(H.features) : 0))
    let info = JobInfo(
      description: desc, creationTime: Double(m.u64(H.creationTimeNs)) / 1e9,
      incarnation: m.u64(H.incarnation), ownerUID: owner,
      creatorPid: Int32(bitPattern: m.u32(H.creatorPid)), slotCount: Int(slots),
      segmentSize: g.totalSize, versionMinor: m.u32(H.versionMinor))
    return ValidatedHeader(geometry: g, info: info)
  }

  /// Bytes in GiB for a refusal line ("1024 GiB", "0.5 GiB").
  static func gib(_ bytes: UInt64, overflow: Bool) -> String {
    if overflow { return "over 16 EiB" }
    let g = Double(bytes) / Double(1 << 30)
    return g >= 10 ? "\(Int(g.rounded())) GiB" : "\((g * 10).rounded() / 10) GiB"
  }

  static func parseShard(_ m: Memory, at off: Int, tp: Int, job: String) throws -> ShardedTensor {
    typealias S = SegmentLayout.Shard
    func corrupt(_ d: String) -> TelemetryError { .corrupt(job: job, detail: "shard entry at \(off): \(d)") }
    let ndim = Int(m.u32(off + S.dimensionCount))
    guard ndim >= 1 && ndim <= S.maxDimensions else { throw corrupt("\(ndim) dimensions") }
    guard let split = SplitKind(rawValue: m.i32(off + S.split)) else { throw corrupt("split kind") }
    let sd = Int(m.i32(off + S.splitDim))
    guard sd >= -1 && sd < ndim else { throw corrupt("split dimension \(sd)") }
    guard Int(m.u32(off + S.rankCount)) == tp else { throw corrupt("rank count") }
    var shape: [Int] = []
    for k in 0..<ndim {
      let v = m.i64(off + S.shape + 8 * k)
      guard v >= 0 && v <= Int64(Int32.max) else { throw corrupt("dimension \(v)") }
      shape.append(Int(v))
    }
    var ranks: [[Range<Int>]] = []
    var descriptions: [String] = []
    for r in 0..<tp {
      let p = off + S.headerSize + r * S.rankPartSize
      let n = Int(m.u32(p + S.rangeCount))
      guard n <= S.maxRanges else { throw corrupt("\(n) ranges") }
      var rs: [Range<Int>] = []
      for k in 0..<n {
        let a = m.i64(p + S.ranges + 16 * k), b = m.i64(p + S.ranges + 16 * k + 8)
        guard a >= 0 && a <= b && b <= Int64(Int32.max) else { throw corrupt("range \(a)..<\(b)") }
        rs.append(Int(a)..<Int(b))
      }
      ranks.append(rs)
      descriptions.append(m.text(p + S.description, capacity: S.descriptionCapacity))
    }
    return ShardedTensor(
      name: m.text(off + S.name, capacity: S.nameCapacity), shape: shape, split: split,
      splitDim: sd < 0 ? nil : sd, ranks: ranks, rankDescriptions: descriptions)
  }
}

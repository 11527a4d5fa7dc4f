// Step and event records, and their encoding into a 248-byte slot payload. The writer encodes a
// step record straight into the slot inside the seqlock (events and tensor statistics into a
// stack buffer, copied into the slot in one block); the reader copies the slot out in one block
// and decodes the copy. What a step measures is JobSchema's
// `StepMetrics`; this file holds only where each of its fields goes in the slot.

import JobSchema

/// One rank's measurements of one step as a ring record: the writer's rank, the time it wrote
/// the record and, on the reader side, the ring index, around one `StepMetrics` value. The
/// metrics' fields read through the record (`record.loss`).
public struct StepRecord: StepMetricsCarrier, Sendable {
  /// Ring index of this record (reader side only; ignored by writers).
  public var index: UInt64 = 0
  /// World rank of the writer.
  public var rank: Int = 0
  /// CLOCK_MONOTONIC ns when the record was written.
  public var timestampNs: UInt64 = 0
  /// What the rank measured.
  public var metrics = StepMetrics()

  /// Creates an empty record.
  public init() {}
}

/// Something that happened between steps on one rank.
public struct EventRecord: Sendable, Equatable {
  /// Ring index (reader side only).
  public var index: UInt64 = 0
  public var rank: Int = 0
  public var timestampNs: UInt64 = 0
  public var kind: EventKind
  public var step: Int
  /// Checkpoint path or error text (at most 208 UTF-8 bytes are stored).
  public var text: String

  public init(kind: EventKind, step: Int, text: String = "") {
    self.kind = kind
    self.step = step
    self.text = text
  }
}

/// Norms of one rank's parameter shards, published every few steps (minor version 1).
public struct TensorStatsRecord: Sendable, Equatable {
  /// Ring index (reader side only).
  public var index: UInt64 = 0
  public var rank: Int = 0
  public var timestampNs: UInt64 = 0
  public var step: Int = 0
  /// Index (llm.c order) of the first tensor in `entries`.
  public var firstTensor: Int = 0
  /// Per tensor: L2 norm of the local weights, of the local gradient, and ‖Δθ‖/‖θ‖ of the update.
  public var entries: [TensorNorms] = []
  public init() {}
}

/// A record read from a ring.
public enum TelemetryRecord: Sendable {
  case step(StepRecord)
  case event(EventRecord)
  case tensorStats(TensorStatsRecord)

  /// Ring index of the record.
  public var index: UInt64 {
    switch self {
    case .step(let s): return s.index
    case .event(let e): return e.index
    case .tensorStats(let t): return t.index
    }
  }

  /// World rank the record says wrote it (a reader accepts it only from that rank's ring).
  public var rank: Int {
    switch self {
    case .step(let s): return s.rank
    case .event(let e): return e.rank
    case .tensorStats(let t): return t.rank
    }
  }
}

/// A 248-byte, 8-aligned scratch buffer holding one slot payload (offsets relative to the slot
/// are `SegmentLayout.Slot.x - 8`).
struct SlotPayload {
  var words: (
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
  ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
}

/// Copies one 248-byte payload as 31 plain 8-byte words (inlined; no call to memmove).
@inline(__always)
func copyPayload(from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer) {
  var k = 0
  while k < SegmentLayout.Slot.payloadSize {
    dst.storeBytes(of: src.load(fromByteOffset: k, as: UInt64.self), toByteOffset: k, as: UInt64.self)
    k += 8
  }
}

enum RecordCodec {
  typealias S = SegmentLayout.Slot
  static let base = S.payload

  /// The 30 payload words a checksum covers (slot bytes 8..<248).
  typealias Words = (
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
  )

  /// One multiply-fold of a word pair, each word xor-ed with a key for its position.
  @inline(__always)
  static func mum(_ x: UInt64, _ y: UInt64, _ k: UInt64) -> UInt64 {
    let a = x ^ (0xA076_1D64_78BD_642F &+ k &* 0x9E37_79B9_7F4A_7C15)
    let b = y ^ (0xE703_7ED1_A0B4_28DB &+ k &* 0xC2B2_AE3D_27D4_EB4F)
    let (hi, lo) = a.multipliedFullWidth(by: b)
    return hi ^ lo
  }

  /// 64-bit checksum of the 30 payload words (slot bytes 8..<248): 15 full-width multiplies
  /// of key-xored word pairs folded into four independent lanes, then a final mix. A change to
  /// one word changes the result except with probability about 2^-60. The writer passes the
  /// words it is about to store (no reload); readers pass the words they copied.
  @inline(__always)
  static func checksum(_ w: Words) -> UInt64 {
    var l0 = mum(w.0, w.1, 0), l1 = mum(w.2, w.3, 2), l2 = mum(w.4, w.5, 4), l3 = mum(w.6, w.7, 6)
    l0 = (l0 &+ mum(w.8, w.9, 8)) ^ mum(w.16, w.17, 16)
    l1 = (l1 &+ mum(w.10, w.11, 10)) ^ mum(w.18, w.19, 18)
    l2 = (l2 &+ mum(w.12, w.13, 12)) ^ mum(w.20, w.21, 20)
    l3 = (l3 &+ mum(w.14, w.15, 14)) ^ mum(w.22, w.23, 22)
    l0 = l0 &+ mum(w.24, w.25, 24)
    l1 = l1 &+ mum(w.26, w.27, 26)
    l2 = l2 &+ mum(w.28, w.29, 28)
    return finish(l0, l1, l2, l3)
  }

  /// The checksum's final mix of its four lanes.
  @inline(__always)
  static func finish(_ l0: UInt64, _ l1: UInt64, _ l2: UInt64, _ l3: UInt64) -> UInt64 {
    var h = l0 ^ (l1 << 17 | l1 >> 47) ^ (l2 << 31 | l2 >> 33) ^ (l3 << 47 | l3 >> 17)
    h ^= h >> 29
    h = h &* 0xBF58_476D_1CE4_E5B9
    h ^= h >> 32
    return h
  }

  /// Checksum of the 30 words at `p` (a copied payload).
  @inline(__always)
  static func checksum(_ p: UnsafeRawPointer) -> UInt64 {
    checksum(p.load(as: Words.self))
  }

  /// Two 32-bit values as one little-endian word (`lo` at the lower address).
  @inline(__always)
  static func pair(_ lo: UInt32, _ hi: UInt32) -> UInt64 { UInt64(lo) | UInt64(hi) << 32 }

  @inline(__always)
  static func put<T>(_ p: UnsafeMutableRawPointer, _ slotOffset: Int, _ v: T) {
    p.storeBytes(of: v, toByteOffset: slotOffset - base, as: T.self)
  }

  @inline(__always)
  static func get<T>(_ p: UnsafeRawPointer, _ slotOffset: Int, _ t: T.Type) -> T {
    p.load(fromByteOffset: slotOffset - base, as: T.self)
  }

  /// Encodes a step record into `p` (248 bytes), checksum included: each pair of the 30 words
  /// is stored and folded into its checksum lane as soon as it is formed, so no more than the
  /// four lanes stay live (forming all 30 words first made the compiler spill them to the stack
  /// and reload them). The result is `checksum(_: Words)` of the stored words.
  @inline(__always)
  static func encode(_ r: StepMetrics, timestampNs: UInt64, rank: UInt32, into p: UnsafeMutableRawPointer) {
    // the 16 u32 buckets as 8 little-endian words (bucket 2j in the low half of word j, as
    // `pair` puts it), read one word at a time: the compiler's 32-byte loads of the tuple
    // missed store forwarding from the caller's narrower stores (a stall per record)
    let h = withUnsafeBytes(of: r.allReduceHistogram.buckets) { b in
      (b.loadUnaligned(fromByteOffset: 0, as: UInt64.self), b.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
       b.loadUnaligned(fromByteOffset: 16, as: UInt64.self), b.loadUnaligned(fromByteOffset: 24, as: UInt64.self),
       b.loadUnaligned(fromByteOffset: 32, as: UInt64.self), b.loadUnaligned(fromByteOffset: 40, as: UInt64.self),
       b.loadUnaligned(fromByteOffset: 48, as: UInt64.self), b.loadUnaligned(fromByteOffset: 56, as: UInt64.self))
    }
    /// Stores words `i` and `i + 1` (slot offsets 8 + 8i…) and returns their fold.
    @inline(__always) func pair(_ i: Int, _ a: UInt64, _ b: UInt64) -> UInt64 {
      p.storeBytes(of: a, toByteOffset: 8 * i, as: UInt64.self)
      p.storeBytes(of: b, toByteOffset: 8 * i + 8, as: UInt64.self)
      return mum(a, b, UInt64(i))
    }
    @inline(__always) func s(_ v: Int) -> UInt64 { UInt64(bitPattern: Int64(truncatingIfNeeded: v)) }
    // lanes as in `checksum(_: Words)`: l0 = ((m0 + m8) ^ m16) + m24, l1 = ((m2 + m10) ^ m18) + m26,
    // l2 = ((m4 + m12) ^ m20) + m28, l3 = (m6 + m14) ^ m22
    var l0 = pair(0, Self.pair(S.Kind.step, r.commPeerWaitMicros), s(r.step))  // 8: kind, peer wait µs; 16
    var l1 = pair(2, timestampNs, s(r.tokens))  // 24, 32
    var l2 = pair(4, Self.pair(r.loss.bitPattern, r.lr.bitPattern),  // 40
                  Self.pair(r.gradNorm.bitPattern, r.computeBusy.bitPattern))  // 48
    var l3 = pair(6, Self.pair(r.gflops.bitPattern, rank), r.stepNs)  // 56, 64
    l0 = l0 &+ pair(8, r.forwardNs, r.backwardNs)  // 72, 80
    l1 = l1 &+ pair(10, r.optimizerNs, r.commNs)  // 88, 96
    l2 = l2 &+ pair(12, r.dataNs, s(r.allReduceCount))  // 104, 112
    l3 = l3 &+ pair(14, r.allReduceBytes, r.allReduceTotalNs)  // 120, 128
    l0 ^= pair(16, r.allReduceMaxNs, r.rssBytes)  // 136, 144
    l1 ^= pair(18, r.paramBytes, r.gradBytes)  // 152, 160
    l2 ^= pair(20, r.optimizerBytes, r.activationBytes)  // 168, 176
    l3 ^= pair(22, h.0, h.1)  // 184, 192: buckets 0-1, 2-3
    l0 = l0 &+ pair(24, h.2, h.3)  // 200, 208
    l1 = l1 &+ pair(26, h.4, h.5)  // 216, 224
    l2 = l2 &+ pair(28, h.6, h.7)  // 232, 240
    put(p, S.checksum, finish(l0, l1, l2, l3))
  }

  /// Encodes an event record into `p` (248 bytes), checksum included. The text is cut at a
  /// UTF-8 boundary to fit.
  static func encode(
    kind: EventKind, step: Int, text: String, timestampNs: UInt64, rank: UInt32,
    into p: UnsafeMutableRawPointer
  ) {
    put(p, S.kind, S.Kind.event)
    put(p, S.eventKind, kind.rawValue)
    put(p, S.step, Int64(truncatingIfNeeded: step))
    put(p, S.timestampNs, timestampNs)
    put(p, S.eventRank, rank)
    let n = FixedText.store(text, into: p + (S.text - base), capacity: S.textCapacity)
    put(p, S.textLength, UInt32(n))
    put(p, S.checksum, checksum(UnsafeRawPointer(p)))
  }

  /// Encodes up to `Slot.statsCapacity` tensor norms (weight, gradient, update ratio triples
  /// in `values`) into `p`, checksum included.
  static func encodeTensorStats(
    step: Int, firstTensor: Int, values: UnsafeBufferPointer<Float>, timestampNs: UInt64, rank: UInt32,
    into p: UnsafeMutableRawPointer
  ) {
    p.initializeMemory(as: UInt8.self, repeating: 0, count: S.payloadSize)
    let n = min(values.count / 3, S.statsCapacity)
    put(p, S.kind, S.Kind.tensorStats)
    put(p, S.eventKind, UInt32(n))
    put(p, S.step, Int64(truncatingIfNeeded: step))
    put(p, S.timestampNs, timestampNs)
    put(p, S.statsRank, rank)
    put(p, S.statsFirstTensor, UInt32(truncatingIfNeeded: firstTensor))
    for i in 0..<(3 * n) { put(p, S.statsEntries + 4 * i, values[i]) }
    put(p, S.checksum, checksum(UnsafeRawPointer(p)))
  }

  /// Result of decoding a copied payload.
  enum Decoded {
    case record(TelemetryRecord)
    /// Checksum mismatch or unknown kind: a damaged record.
    case corrupt
  }

  /// Decodes a copied payload (248 bytes). Never traps on garbage.
  static func decode(_ p: UnsafeRawPointer, index: UInt64) -> Decoded {
    guard get(p, S.checksum, UInt64.self) == checksum(p) else { return .corrupt }
    let kind = get(p, S.kind, UInt32.self)
    if kind == S.Kind.step {
      var r = StepRecord()
      r.index = index
      r.rank = Int(get(p, S.rank, UInt32.self))
      r.timestampNs = get(p, S.timestampNs, UInt64.self)
      withUnsafeMutableBytes(of: &r.metrics) { m in
        for c in StepSlots.copies {
          if c.size == 8 {
            m.storeBytes(of: get(p, c.slot, UInt64.self), toByteOffset: c.metrics, as: UInt64.self)
          } else {
            m.storeBytes(of: get(p, c.slot, UInt32.self), toByteOffset: c.metrics, as: UInt32.self)
          }
        }
      }
      withUnsafeMutableBytes(of: &r.metrics.allReduceHistogram.buckets) { h in
        h.baseAddress!.copyMemory(from: p + (S.histogram - base), byteCount: 64)
      }
      return .record(.step(r))
    }
    if kind == S.Kind.event, let ek = EventKind(rawValue: get(p, S.eventKind, UInt32.self)) {
      let n = Int(min(get(p, S.textLength, UInt32.self), UInt32(S.textCapacity)))
      let text = FixedText.load(p + (S.text - base), length: n)
      var e = EventRecord(kind: ek, step: Int(get(p, S.step, Int64.self)), text: text)
      e.index = index
      e.rank = Int(get(p, S.eventRank, UInt32.self))
      e.timestampNs = get(p, S.timestampNs, UInt64.self)
      return .record(.event(e))
    }
    if kind == S.Kind.tensorStats {
      let n = Int(get(p, S.eventKind, UInt32.self))
      guard n <= S.statsCapacity else { return .corrupt }
      var t = TensorStatsRecord()
      t.index = index
      t.rank = Int(get(p, S.statsRank, UInt32.self))
      t.step = Int(get(p, S.step, Int64.self))
      t.timestampNs = get(p, S.timestampNs, UInt64.self)
      t.firstTensor = Int(get(p, S.statsFirstTensor, UInt32.self))
      t.entries = (0..<n).map { i in
        TensorNorms(weightNorm: get(p, S.statsEntries + 12 * i, Float.self),
                    gradNorm: get(p, S.statsEntries + 12 * i + 4, Float.self),
                    updateRatio: get(p, S.statsEntries + 12 * i + 8, Float.self))
      }
      return .record(.tensorStats(t))
    }
    return .corrupt
  }
}

/// Where a step record keeps each field of `StepMetrics`, by slot offset (the histogram's 16 u32
/// follow at `Slot.histogram`). Readers decode with these tables; the writer's `encode` forms the
/// same words in registers, and a test holds the two together.
enum StepSlots {
  typealias S = SegmentLayout.Slot
  /// i64 fields.
  nonisolated(unsafe) static let integers: [(offset: Int, field: WritableKeyPath<StepMetrics, Int>)] = [
    (S.step, \.step), (S.tokens, \.tokens), (S.allReduceCount, \.allReduceCount),
  ]
  /// f32 fields.
  nonisolated(unsafe) static let floats: [(offset: Int, field: WritableKeyPath<StepMetrics, Float>)] = [
    (S.loss, \.loss), (S.lr, \.lr), (S.gradNorm, \.gradNorm), (S.computeBusy, \.computeBusy), (S.gflops, \.gflops),
  ]
  /// u32 fields.
  nonisolated(unsafe) static let halfWords: [(offset: Int, field: WritableKeyPath<StepMetrics, UInt32>)] = [
    (S.commPeerWaitMicros, \.commPeerWaitMicros),
  ]
  /// u64 fields.
  nonisolated(unsafe) static let words: [(offset: Int, field: WritableKeyPath<StepMetrics, UInt64>)] = [
    (S.stepNs, \.stepNs), (S.forwardNs, \.forwardNs), (S.backwardNs, \.backwardNs), (S.optimizerNs, \.optimizerNs),
    (S.commNs, \.commNs), (S.dataNs, \.dataNs), (S.allReduceBytes, \.allReduceBytes),
    (S.allReduceTotalNs, \.allReduceTotalNs), (S.allReduceMaxNs, \.allReduceMaxNs), (S.rssBytes, \.rssBytes),
    (S.paramBytes, \.paramBytes), (S.gradBytes, \.gradBytes), (S.optimizerBytes, \.optimizerBytes),
    (S.activationBytes, \.activationBytes),
  ]

  /// One field's copy from the slot into `StepMetrics`: slot offset, offset within the struct,
  /// size in bytes (8 for i64/u64 and `Int`, 4 for f32).
  struct Copy: Sendable {
    let slot: Int, metrics: Int, size: Int
  }

  /// The three tables above as plain byte copies, for the reader's decoder: writing through a
  /// key path costs about 15 ns a field, a table-driven store about one.
  static let copies: [Copy] =
    integers.map { Copy(slot: $0.offset, metrics: MemoryLayout<StepMetrics>.offset(of: $0.field)!, size: 8) }
    + floats.map { Copy(slot: $0.offset, metrics: MemoryLayout<StepMetrics>.offset(of: $0.field)!, size: 4) }
    + halfWords.map { Copy(slot: $0.offset, metrics: MemoryLayout<StepMetrics>.offset(of: $0.field)!, size: 4) }
    + words.map { Copy(slot: $0.offset, metrics: MemoryLayout<StepMetrics>.offset(of: $0.field)!, size: 8) }
}

/// Fixed-capacity UTF-8 text fields.
enum FixedText {
  /// Stores up to `capacity` bytes of `s`, cut at a UTF-8 character boundary, NUL-padding the
  /// rest. Returns the bytes stored.
  @discardableResult
  static func store(_ s: String, into p: UnsafeMutableRawPointer, capacity: Int) -> Int {
    p.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
    var n = 0
    for scalar in s.unicodeScalars {
      let len = UTF8.width(scalar)
      if n + len > capacity { break }
      UTF8.encode(scalar) { b in p.storeBytes(of: b, toByteOffset: n, as: UInt8.self); n += 1 }
    }
    return n
  }

  /// Reads at most `length` bytes, stopping at the first NUL; invalid UTF-8 and control
  /// characters are replaced (`printable`).
  static func load(_ p: UnsafeRawPointer, length: Int) -> String {
    var n = 0
    while n < length && p.load(fromByteOffset: n, as: UInt8.self) != 0 { n += 1 }
    let buf = UnsafeRawBufferPointer(start: p, count: n)
    return printable(String(decoding: buf, as: UTF8.self))
  }

  /// `s` with every control character (C0, DEL, C1: terminal escapes among them) replaced by
  /// U+FFFD, as invalid UTF-8 is. Every text a reader takes from a segment passes here, so no
  /// segment, whoever wrote it, can move a terminal's cursor or rewrite its title through
  /// `watch`, `ls`, `export` or the dashboard.
  public static func printable(_ s: String) -> String {
    guard s.unicodeScalars.contains(where: isControl) else { return s }
    var out = String.UnicodeScalarView()
    for u in s.unicodeScalars { out.append(isControl(u) ? "\u{FFFD}" : u) }
    return String(out)
  }

  static func isControl(_ u: Unicode.Scalar) -> Bool {
    u.value < 0x20 || (u.value >= 0x7F && u.value < 0xA0)
  }
}

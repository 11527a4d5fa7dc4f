import CMPI
import JobSchema
import Glibc

/// An MPI failure, as a thrown value.
public struct MPIError: Error, CustomStringConvertible {
  public let call: String
  public let code: Int32
  public var description: String { "MPI call \(call) failed with error code \(code)" }
}

@inline(__always)
func check(_ rc: Int32, _ call: String) throws {
  if rc != cmpi_success() { throw MPIError(call: call, code: rc) }
}

/// Reduction operators.
public enum ReduceOp: Sendable {
  case sum, max, min
  var handle: MPI_Op {
    switch self {
    case .sum: return cmpi_op_sum()
    case .max: return cmpi_op_max()
    case .min: return cmpi_op_min()
    }
  }
}

/// How the data collectives run: OpenMPI's own (`MPI_Iallreduce`, `MPI_Ireduce_scatter_block`,
/// `MPI_Iallgather`, which choose algorithms by size and topology and may allocate internally),
/// or the hand-written ring of non-blocking send/receive pairs (no allocation after
/// `reserveScratch`).
public enum CollectiveAlgorithm: String, Sendable, CaseIterable {
  case mpi, ring
}

/// Monotonic clock in nanoseconds (no allocation, vDSO call).
@inline(__always)
public func monotonicNanos() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Running statistics of the collectives issued through one or more communicators.
/// Reset by the trainer each step; read into the step's metrics.
public struct CommStats: Sendable {
  public var count: Int = 0
  public var bytes: UInt64 = 0
  public var totalNs: UInt64 = 0
  public var maxNs: UInt64 = 0
  /// Latencies, log2 µs buckets.
  public var histogram = LatencyHistogram()
  public init() {}

  @inline(__always)
  mutating func record(bytes b: Int, nanos: UInt64) {
    count += 1
    bytes &+= UInt64(b)
    totalNs &+= nanos
    if nanos > maxNs { maxNs = nanos }
    histogram.record(nanoseconds: nanos)
  }
}

/// Told when this rank enters and leaves a collective, and while it waits in one, so a monitor
/// can tell a rank that waits for its peers from one that does not move. Called on the training
/// thread inside the step: implementations must not block or allocate.
public protocol CollectiveWaitObserver: AnyObject {
  /// Before the rank can block in a collective of `kind` (`nowNs`: CLOCK_MONOTONIC).
  func collectiveBegan(_ kind: CollectiveKind, nowNs: UInt64)
  /// Between naps of a wait that outlasted the spin phase: the rank is alive and waiting.
  func collectiveWaiting(nowNs: UInt64)
  /// After the collective completed.
  func collectiveEnded()
}

/// Process-wide MPI lifetime. `initialize()` works under mpirun and as a singleton.
public enum MPIRuntime {
  public static func initialize() throws {
    var provided: Int32 = 0
    try check(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
  }
  public static func finalize() { _ = MPI_Finalize() }
  /// Ends every process of the job (use after a fatal, already-reported error on one rank).
  public static func abort(_ code: Int32) -> Never {
    _ = MPI_Abort(cmpi_comm_world(), code)
    exit(code)
  }
  public static func wallTime() -> Double { MPI_Wtime() }
}

/// The parts of a communicator that post messages of their own: each runs on its own duplicate
/// of the group (`Communicator.duplicate(for:)`, `MPI_Comm_dup`), whose messages can never
/// match another part's, whatever tags either picks. Within one part, tags come from the
/// duplicate's `reserveTag()`, so no two of its reductions share one either.
public enum MessageSpace: String, Sendable, CaseIterable {
  /// The blocking collectives' ring steps, on the communicator itself (`ringTags`).
  case collectives
  /// `--overlap-tp`'s row-chunk reductions and all-gather (TP group).
  case tensorParallelOverlap
  /// `--overlap-grad-reduce`'s bucket segments (DP group).
  case gradientBuckets
  /// Under sequence parallelism with `--overlap-grad-reduce`: the replicated slices' TP sums.
  case replicatedGradientSums
  /// Records of other nodes' ranks forwarded to world rank 0 (world).
  case telemetryForwarding
}

/// A typed MPI communicator. Collectives are timed into `stats` and into `activity`.
public final class Communicator {
  let handle: MPI_Comm
  public let rank: Int
  public let size: Int
  private let owned: Bool
  /// Whose messages this communicator carries: `.collectives` for a group made by `world()` or
  /// a split, a subsystem's own space for a duplicate.
  public let space: MessageSpace

  /// What a communicator and its duplicates book and share: a duplicate is the same group
  /// measured, observed and run the same way, with messages of its own.
  private final class Books {
    var stats = CommStats()
    var activity = CommActivity()
    var waitObserver: CollectiveWaitObserver?
    var algorithm: CollectiveAlgorithm = .ring
  }
  private let books: Books

  /// Collective statistics accumulated since the last `resetStats()` (shared with duplicates).
  public var stats: CommStats {
    get { books.stats }
    _modify { yield &books.stats }
  }
  /// Exposed and in-flight communication time of this rank; communicators that should be
  /// measured together (a rank's TP and DP groups) share one, and duplicates share their group's.
  public var activity: CommActivity {
    get { books.activity }
    set { books.activity = newValue }
  }
  /// Told about every wait in a collective of this communicator (and of its duplicates).
  public var waitObserver: CollectiveWaitObserver? {
    get { books.waitObserver }
    set { books.waitObserver = newValue }
  }
  /// How this communicator's float and double collectives run (and its duplicates').
  public var algorithm: CollectiveAlgorithm {
    get { books.algorithm }
    set { books.algorithm = newValue }
  }
  /// The two requests of one ring step (receive, send), kept so waits allocate nothing.
  private let requests = UnsafeMutablePointer<MPI_Request?>.allocate(capacity: 2)
  /// The next tag `reserveTag()` hands out (duplicates only).
  private var nextTag: Int32 = 0

  /// The tags of the blocking collectives' ring steps: reduce-scatter half, all-gather half.
  static let ringTags: (reduceScatter: Int32, allGather: Int32) = (0, 1)
  /// The largest tag every MPI implementation accepts (the standard's floor for `MPI_TAG_UB`).
  public static let tagLimit: Int32 = 32767

  init(handle: MPI_Comm, owned: Bool, space: MessageSpace = .collectives, books: Any? = nil) {
    self.handle = handle
    self.owned = owned
    self.space = space
    self.books = (books as? Books) ?? Books()
    var r: Int32 = 0
    var s: Int32 = 0
    MPI_Comm_rank(handle, &r)
    MPI_Comm_size(handle, &s)
    rank = Int(r)
    size = Int(s)
  }

  deinit {
    scratch.deallocate()
    requests.deallocate()
    var finalized: Int32 = 0
    MPI_Finalized(&finalized)
    if owned && finalized == 0 {
      var h: MPI_Comm? = handle
      MPI_Comm_free(&h)
    }
  }

  /// MPI_COMM_WORLD.
  public static func world() -> Communicator { Communicator(handle: cmpi_comm_world(), owned: false) }

  /// Splits into sub-communicators: ranks with the same `color` end up together, ordered by `key`.
  public func split(color: Int, key: Int) throws -> Communicator {
    var out: MPI_Comm? = nil
    try check(MPI_Comm_split(handle, Int32(color), Int32(key), &out), "MPI_Comm_split")
    return Communicator(handle: out!, owned: true)
  }

  /// The same ranks with a message space of their own for `space` (`MPI_Comm_dup`; collective:
  /// every rank of the group calls it, in the same order). The duplicate shares this
  /// communicator's statistics, activity, wait observer and algorithm, so what runs on it is
  /// measured as this group's.
  public func duplicate(for space: MessageSpace) throws -> Communicator {
    precondition(self.space == .collectives && space != .collectives, "duplicate a group for a subsystem's messages")
    var out: MPI_Comm? = nil
    try check(MPI_Comm_dup(handle, &out), "MPI_Comm_dup")
    return Communicator(handle: out!, owned: true, space: space, books: books)
  }

  /// A tag no other reduction or message of this duplicate uses (0, 1, 2, … in the order of
  /// the calls, so the same on every rank that makes the same calls).
  public func reserveTag() -> Int32 {
    precondition(space != .collectives, "the blocking collectives own the tags of a group: reserve tags on a duplicate")
    precondition(nextTag <= Self.tagLimit, "more than \(Self.tagLimit + 1) messages in flight in \(space.rawValue)")
    defer { nextTag += 1 }
    return nextTag
  }

  /// Whether this communicator's messages and `other`'s can match each other (the same MPI
  /// context: `MPI_Comm_compare` says identical).
  public func sharesMessages(with other: Communicator) -> Bool {
    var result: Int32 = 0
    MPI_Comm_compare(handle, other.handle, &result)
    return result == cmpi_ident()
  }

  /// The ranks of this communicator that share this node's memory.
  public func splitShared() throws -> Communicator {
    var out: MPI_Comm? = nil
    try check(
      MPI_Comm_split_type(handle, cmpi_comm_type_shared(), Int32(rank), cmpi_info_null(), &out),
      "MPI_Comm_split_type")
    return Communicator(handle: out!, owned: true)
  }

  public func resetStats() { books.stats = CommStats() }

  /// In-place all-reduce of `count` floats. A communicator of size 1 returns at once.
  ///
  /// With `.ring` (the default) this is the hand-written ring (see `ringAllReduce`); with `.mpi`
  /// it is OpenMPI's `MPI_Iallreduce`, which picks its algorithm by size and topology. Either way
  /// every rank ends with bitwise-identical results, and the wait spins briefly, then naps (see
  /// `waitAll`).
  @inline(__always)
  public func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, _ op: ReduceOp = .sum) {
    allReduce(buffer, count: count, op, type: cmpi_float(), kind: .allReduce)
  }

  /// In-place all-reduce of doubles (used for loss and norm accumulators); `kind` says what a
  /// monitor sees this rank waiting in (`.control` for the step-boundary decision).
  public func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, _ op: ReduceOp = .sum,
                        kind: CollectiveKind = .allReduce) {
    allReduce(buffer, count: count, op, type: cmpi_double(), kind: kind)
  }

  /// The all-reduce of either element type: `type` is its MPI datatype.
  @inline(__always)
  private func allReduce<T: BinaryFloatingPoint>(_ buffer: UnsafeMutablePointer<T>, count: Int, _ op: ReduceOp,
                                                 type: MPI_Datatype, kind: CollectiveKind) {
    if size == 1 { return }
    let t0 = monotonicNanos()
    waitObserver?.collectiveBegan(kind, nowNs: t0)
    switch algorithm {
    case .mpi:
      MPI_Iallreduce(cmpi_in_place(), buffer, Int32(count), type, op.handle, handle, requests)
      waitAll(1)
    case .ring: ringAllReduce(buffer, count: count, op: op)
    }
    waitObserver?.collectiveEnded()
    finishBlocking(t0, bytes: count * MemoryLayout<T>.stride)
  }

  /// Reduce-scatter of `size` equal blocks of `count` floats: rank r receives in `out` the
  /// reduction over ranks of block r of `buffer` (`size * count` floats). `buffer` is left
  /// undefined (the ring reduces in place); `out` may be `buffer + rank * count` (in place: with
  /// `.mpi` the result passes through the scratch, so reserve `size * count * 4` bytes first).
  /// A communicator of size 1 copies block 0.
  ///
  ///     buffer: [size * count]  ->  out: [count]
  public func reduceScatter(_ buffer: UnsafeMutablePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>,
                            _ op: ReduceOp = .sum) {
    if size == 1 {
      if out != buffer { out.update(from: buffer, count: count) }
      return
    }
    let t0 = monotonicNanos()
    waitObserver?.collectiveBegan(.reduceScatter, nowNs: t0)
    switch algorithm {
    case .mpi where out == buffer + rank * count:
      // in place (the distributed optimizer's gradient blocks): MPI's own in-place form would
      // write this rank's result over block 0, so it lands in the scratch (`reserveScratch`)
      // and the other blocks keep this rank's values, as after the ring
      let result = scratch.assumingMemoryBound(to: Float.self)
      MPI_Ireduce_scatter_block(buffer, result, Int32(count), cmpi_float(), op.handle, handle, requests)
      waitAll(1)
      out.update(from: result, count: count)
    case .mpi:
      MPI_Ireduce_scatter_block(buffer, out, Int32(count), cmpi_float(), op.handle, handle, requests)
      waitAll(1)
    case .ring:
      ringReduceScatter(buffer, count: count, op: op)
      let mine = buffer + rank * count
      if out != mine { out.update(from: mine, count: count) }
    }
    waitObserver?.collectiveEnded()
    finishBlocking(t0, bytes: count * size * 4)
  }

  /// All-gather of `count` floats from each rank: `out` (`size * count` floats) ends with rank
  /// k's `chunk` at block k on every rank. `chunk` may be `out + rank * count` (in place).
  ///
  ///     chunk: [count]  ->  out: [size * count]
  public func allGather(_ chunk: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
    let mine = out + rank * count
    if UnsafePointer(mine) != chunk { mine.update(from: chunk, count: count) }
    if size == 1 { return }
    let t0 = monotonicNanos()
    waitObserver?.collectiveBegan(.allGather, nowNs: t0)
    switch algorithm {
    case .mpi:
      MPI_Iallgather(cmpi_in_place(), 0, cmpi_float(), out, Int32(count), cmpi_float(), handle, requests)
      waitAll(1)
    case .ring: ringAllGather(out, count: count)
    }
    waitObserver?.collectiveEnded()
    finishBlocking(t0, bytes: count * size * 4)
  }

  /// Books a blocking collective that began at `t0` and ended now: all of it was exposed, and
  /// for the ring, the part of its first step beyond an average later step counts as waiting
  /// for a peer (a neighbour that had not yet arrived; see `CommActivity`).
  @inline(__always)
  private func finishBlocking(_ t0: UInt64, bytes: Int) {
    let t1 = monotonicNanos()
    let nanos = t1 &- t0
    stats.record(bytes: bytes, nanos: nanos)
    var peerWait: UInt64 = 0
    if ringSteps > 1 {
      let later = (nanos &- min(nanos, ringFirstStepNs)) / UInt64(ringSteps - 1)
      peerWait = ringFirstStepNs > later ? ringFirstStepNs &- later : 0
    }
    ringSteps = 0
    activity.blocking(from: t0, to: t1, peerWaitNs: peerWait)
  }

  /// Spin budget of a wait before it starts napping: covers a collective whose peers are ready
  /// (and the transfers of a large one), so the fast path never sleeps.
  static let spinNanos: UInt64 = 2_000_000
  /// Longest nap of a wait: a waiting rank tests its requests about this often.
  static let maxNapMicros: UInt32 = 1000

  /// Waits for `requests[0..<count]` without burning a core: tests them in a loop for up to
  /// `spinNs`, then naps (`firstNap` µs, doubling up to `maxNap`) between tests, telling the wait
  /// observer after each nap so its heartbeat stays fresh while the rank waits for a peer.
  private func waitAll(_ count: Int32, spinNs: UInt64 = Communicator.spinNanos, firstNap: UInt32 = 20,
                       maxNap: UInt32 = Communicator.maxNapMicros) {
    if testAll(count) { return }
    if spinNs > 0 {
      let start = monotonicNanos()
      var polls = 0
      while true {
        if testAll(count) { return }
        polls &+= 1
        if polls & 63 == 0 && monotonicNanos() &- start >= spinNs { break }
      }
    }
    var nap = firstNap
    while true {
      usleep(nap)
      if testAll(count) { return }
      waitObserver?.collectiveWaiting(nowNs: monotonicNanos())
      nap = Swift.min(nap &* 2, maxNap)
    }
  }

  /// Tests `requests[0..<count]` (each test also drives MPI's progress); true once all are done.
  /// A completed request becomes `MPI_REQUEST_NULL`, which tests as done.
  @inline(__always)
  private func testAll(_ count: Int32) -> Bool {
    var all = true
    for i in 0..<Int(count) {
      var done: Int32 = 0
      MPI_Test(requests + i, &done, cmpi_status_ignore())
      if done == 0 { all = false }
    }
    return all
  }

  /// One ring step: receive `recvBytes` from the left neighbour while sending `sendBytes` to the
  /// right one (the non-blocking form of `MPI_Sendrecv`).
  @inline(__always)
  private func sendReceive(_ send: UnsafeRawPointer, _ sendBytes: Int32, to right: Int32,
                           _ recv: UnsafeMutableRawPointer, _ recvBytes: Int32, from left: Int32, tag: Int32) {
    let t = ringSteps == 0 ? monotonicNanos() : 0
    MPI_Irecv(recv, recvBytes, cmpi_byte(), left, tag, handle, requests)
    MPI_Isend(send, sendBytes, cmpi_byte(), right, tag, handle, requests + 1)
    waitAll(2)
    if ringSteps == 0 { ringFirstStepNs = monotonicNanos() &- t }
    ringSteps &+= 1
  }

  /// Ring steps of the blocking collective in progress, and how long its first one took (the
  /// peer-wait estimate of `finishBlocking`).
  private var ringSteps = 0
  private var ringFirstStepNs: UInt64 = 0

  /// Scratch for one ring chunk; grown outside the step by `reserveScratch`.
  private var scratch = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
  private var scratchBytes = 64

  /// Makes sure all-reduces of up to `bytes` bytes need no allocation.
  public func reserveScratch(bytes: Int) {
    let need = (bytes + size - 1) / size + 64
    if need <= scratchBytes { return }
    scratch.deallocate()
    scratch = UnsafeMutableRawPointer.allocate(byteCount: need, alignment: 64)
    scratchBytes = need
  }

  /// The ring all-reduce: a ring reduce-scatter, then a ring all-gather of the reduced chunks
  /// (`RingSchedule.chunkStart`). Each chunk is reduced once and then copied, so every rank
  /// ends bitwise identical.
  private func ringAllReduce<T: BinaryFloatingPoint>(_ buffer: UnsafeMutablePointer<T>, count n: Int, op: ReduceOp) {
    let p = size
    ringReduceScatterChunks(buffer, start: { RingSchedule.chunkStart($0, of: n, ranks: p) }, op: op)
    ringAllGatherChunks(buffer, start: { RingSchedule.chunkStart($0, of: n, ranks: p) })
  }

  /// Ring reduce-scatter of `size` blocks of `count` in place: block r of rank r ends reduced.
  private func ringReduceScatter(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) {
    ringReduceScatterChunks(buffer, start: { count * $0 }, op: op)
  }

  /// Ring all-gather of `size` blocks of `count` in place: block r comes from rank r.
  private func ringAllGather(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
    ringAllGatherChunks(buffer, start: { count * $0 })
  }

  /// The reduce-scatter half of the ring (`RingSchedule`): after its p-1 steps rank r holds
  /// chunk r reduced over all ranks.
  @inline(__always)
  private func ringReduceScatterChunks<T: BinaryFloatingPoint>(_ buffer: UnsafeMutablePointer<T>, start: (Int) -> Int,
                                                               op: ReduceOp) {
    let ring = RingSchedule(rank: rank, size: size)
    var maxChunk = 0
    for i in 0..<size { maxChunk = Swift.max(maxChunk, start(i + 1) - start(i)) }
    if maxChunk * MemoryLayout<T>.stride > scratchBytes { reserveScratch(bytes: maxChunk * MemoryLayout<T>.stride * size) }
    let tmp = scratch.assumingMemoryBound(to: T.self)
    let bytes = Int32(MemoryLayout<T>.stride)
    for s in ring.reduceScatterSteps {
      let (sendChunk, recvChunk, _) = ring.chunks(atStep: s)
      let ss = start(sendChunk), sn = start(sendChunk + 1) - ss
      let rs = start(recvChunk), rn = start(recvChunk + 1) - rs
      sendReceive(buffer + ss, Int32(sn) * bytes, to: ring.right, tmp, Int32(rn) * bytes, from: ring.left,
                  tag: Self.ringTags.reduceScatter)
      let dst = buffer + rs
      switch op {
      case .sum: for i in 0..<rn { dst[i] += tmp[i] }
      case .max: for i in 0..<rn where tmp[i] > dst[i] { dst[i] = tmp[i] }
      case .min: for i in 0..<rn where tmp[i] < dst[i] { dst[i] = tmp[i] }
      }
    }
  }

  /// The all-gather half of the ring (`RingSchedule`): after its p-1 steps every rank holds
  /// every rank's chunk.
  @inline(__always)
  private func ringAllGatherChunks<T>(_ buffer: UnsafeMutablePointer<T>, start: (Int) -> Int) {
    let ring = RingSchedule(rank: rank, size: size)
    let bytes = Int32(MemoryLayout<T>.stride)
    for s in ring.allGatherSteps {
      let (sendChunk, recvChunk, _) = ring.chunks(atStep: s)
      let ss = start(sendChunk), sn = start(sendChunk + 1) - ss
      let rs = start(recvChunk), rn = start(recvChunk + 1) - rs
      sendReceive(buffer + ss, Int32(sn) * bytes, to: ring.right, buffer + rs, Int32(rn) * bytes, from: ring.left,
                  tag: Self.ringTags.allGather)
    }
  }

  /// Broadcast of `count` Int32 values from `root` (spins briefly, then naps: see `waitAll`).
  public func broadcast(_ buffer: UnsafeMutablePointer<Int32>, count: Int, root: Int = 0) {
    if size == 1 { return }
    waitObserver?.collectiveBegan(.broadcast, nowNs: monotonicNanos())
    MPI_Ibcast(buffer, Int32(count), cmpi_int32(), Int32(root), handle, requests)
    waitAll(1)
    waitObserver?.collectiveEnded()
  }

  /// Broadcast that waits without spinning: polls completion every `pollMicros`, so ranks blocked
  /// on a paused job use almost no CPU.
  public func sleepyBroadcast(_ buffer: UnsafeMutablePointer<Int32>, count: Int, root: Int = 0,
                              pollMicros: UInt32 = 5000) {
    if size == 1 { return }
    waitObserver?.collectiveBegan(.control, nowNs: monotonicNanos())
    MPI_Ibcast(buffer, Int32(count), cmpi_int32(), Int32(root), handle, requests)
    waitAll(1, spinNs: 0, firstNap: pollMicros, maxNap: pollMicros)
    waitObserver?.collectiveEnded()
  }

  /// Barrier that waits without spinning (see `sleepyBroadcast`).
  public func sleepyBarrier(pollMicros: UInt32 = 5000) {
    if size == 1 { return }
    waitObserver?.collectiveBegan(.control, nowNs: monotonicNanos())
    MPI_Ibarrier(handle, requests)
    waitAll(1, spinNs: 0, firstNap: pollMicros, maxNap: pollMicros)
    waitObserver?.collectiveEnded()
  }

  /// Barrier (spins briefly, then naps: see `waitAll`).
  public func barrier() {
    if size == 1 { return }
    waitObserver?.collectiveBegan(.barrier, nowNs: monotonicNanos())
    MPI_Ibarrier(handle, requests)
    waitAll(1)
    waitObserver?.collectiveEnded()
  }

  /// Gathers one Int64 from each rank to all ranks.
  public func allGather(_ value: Int64) -> [Int64] {
    var v = value
    var out = [Int64](repeating: 0, count: size)
    if size == 1 { return [value] }
    out.withUnsafeMutableBufferPointer { p in
      _ = MPI_Allgather(&v, 1, cmpi_int64(), p.baseAddress, 1, cmpi_int64(), handle)
    }
    return out
  }

  /// Gathers a fixed-length byte string from each rank to all ranks.
  public func allGatherBytes(_ bytes: [UInt8], length: Int) -> [[UInt8]] {
    var send = bytes
    send += [UInt8](repeating: 0, count: max(0, length - send.count))
    send = Array(send.prefix(length))
    var recv = [UInt8](repeating: 0, count: length * size)
    send.withUnsafeMutableBufferPointer { s in
      recv.withUnsafeMutableBufferPointer { r in
        _ = MPI_Allgather(s.baseAddress, Int32(length), cmpi_byte(), r.baseAddress, Int32(length),
                          cmpi_byte(), handle)
      }
    }
    return (0..<size).map { Array(recv[$0 * length..<($0 + 1) * length]) }
  }
}

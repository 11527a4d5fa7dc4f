// Non-blocking reductions that the caller drives: start one, call `progress()` between pieces
// of computation, `wait()` when the result is needed. Several may be in flight on one
// subsystem's duplicate of a communicator at once (each has its own tag, requests and scratch).
//
// With `.ring` a reduction of elements [lo, hi) of an n-float buffer runs the ring of
// `Communicator.allReduce` over the intersections of [lo, hi) with that buffer's ring chunks
// [n·i/p, n·(i+1)/p): every element is reduced by the same ranks in the same order as in one
// blocking all-reduce of the whole buffer, so reducing a buffer range by range (in any order,
// overlapped or not) gives bitwise the same result. Each ring step is posted when the previous
// one is seen complete, so the reduction advances only when the rank calls `progress()` or
// `wait()`. With `.mpi` the range is handed to `MPI_Iallreduce` (`MPI_Ireduce_scatter` for the
// reduce-scatter half; OpenMPI picks the order: bitwise equal to the whole-buffer call only for 2
// ranks, where a sum of two is commutative).
//
// The same object runs either half of the ring alone: the reduce-scatter (rank r's ring chunk
// ends summed on rank r) and the all-gather (rank r's chunk, already final, copied to every
// rank; no arithmetic, so no order to keep). An all-gather reports each chunk as it arrives
// (`arrived(_:)`), so a caller can compute on the rows it has while the rest are in flight.

import CMPI
import Glibc
import JobSchema

/// What a `RangeReduction` leaves in its range.
public enum RangeReductionKind: Sendable {
  /// Every element summed over the ranks, on every rank.
  case allReduce
  /// Only the reduce-scatter half: of [lo, hi), the part inside rank r's ring chunk
  /// [n·r/p, n·(r+1)/p) ends summed on rank r; the rest is undefined (for a distributed
  /// optimizer, whose rank r owns that chunk; with `.mpi` the part is copied back there when
  /// the reduction completes).
  case reduceScatter
  /// Only the all-gather half: rank r's ring chunk of [lo, hi) holds its final values at the
  /// start and ends copied to every rank (with `.mpi` the range must be the whole buffer and
  /// the chunks equal).
  case allGather

  /// The kind a wait in this reduction reports to a monitor.
  var collective: CollectiveKind {
    switch self {
    case .allReduce: return .allReduce
    case .reduceScatter: return .reduceScatter
    case .allGather: return .allGather
    }
  }
}

/// One non-blocking sum over a communicator of a range of a float buffer (see the file comment).
/// Allocation-free after `init`: scratch for the largest ring chunk of the range is reserved
/// up front.
public final class RangeReduction {
  let comm: Communicator
  /// This reduction's tag on `comm`.
  public let tag: Int32
  private let requests = UnsafeMutablePointer<MPI_Request?>.allocate(capacity: 2)
  private let scratch: UnsafeMutablePointer<Float>
  private let scratchCount: Int
  /// `.mpi` reduce-scatter: the part of the range in each rank's ring chunk, and where this
  /// rank's part starts (relative to `lo`).
  private let mpiCounts: UnsafeMutablePointer<Int32>
  private let ownStart: Int, ownCount: Int
  private var buffer: UnsafeMutablePointer<Float>? = nil
  /// Elements of the whole buffer, and the range reduced.
  let n: Int, lo: Int, hi: Int
  /// The ring this rank runs (the blocking collectives' schedule).
  private let ring: RingSchedule
  private var kind = RangeReductionKind.allReduce
  /// Built for `.allGather` only (no scratch).
  private let gatherOnly: Bool
  /// Ring step in progress (0 ..< 2(p-1); a reduce-scatter stops at p-1, an all-gather starts
  /// there); -1 when idle.
  private var step = -1
  private var startedNs: UInt64 = 0

  /// A reduction over `comm`, a subsystem's duplicate of its group (`Communicator.duplicate(for:)`),
  /// of elements `range` of buffers of `n` floats. Its tag is reserved on `comm`, so it is
  /// distinct from every other reduction of that subsystem, and the subsystem's messages never
  /// meet another's. Every rank of the group must build its reductions in the same order. Its
  /// scratch holds the largest ring chunk this rank receives and reduces: about |range| / p
  /// (none when it will only run `.allGather`, which copies in place).
  public init(comm: Communicator, count n: Int, range: Range<Int>, gatherOnly: Bool = false) {
    self.comm = comm
    self.tag = comm.reserveTag()
    self.n = n
    lo = range.lowerBound
    hi = range.upperBound
    self.gatherOnly = gatherOnly
    let p = comm.size
    let ring = RingSchedule(rank: comm.rank, size: p)
    self.ring = ring
    // chunk c of the whole buffer, clamped to the range
    let (lo, hi) = (range.lowerBound, range.upperBound)
    func part(_ c: Int) -> Range<Int> {
      min(max(RingSchedule.chunkStart(c, of: n, ranks: p), lo), hi)..<min(max(RingSchedule.chunkStart(c + 1, of: n, ranks: p), lo), hi)
    }
    var need = 1
    if p > 1 && !gatherOnly {
      for s in ring.reduceScatterSteps { need = max(need, part(ring.chunks(atStep: s).receive).count) }
    }
    let own = part(comm.rank)
    (ownStart, ownCount) = (own.lowerBound - lo, own.count)
    mpiCounts = .allocate(capacity: p)
    for c in 0..<p { mpiCounts[c] = Int32(part(c).count) }
    if !gatherOnly { need = max(need, ownCount) }  // `.mpi` reduce-scatter's result
    scratchCount = need
    scratch = .allocate(capacity: scratchCount)
    scratch.initialize(repeating: 0, count: scratchCount)
    // MPI_REQUEST_NULL tests as complete: the MPI path uses only the first request
    requests.initialize(repeating: cmpi_request_null(), count: 2)
  }

  deinit {
    scratch.deallocate()
    requests.deallocate()
    mpiCounts.deallocate()
  }

  /// True while started and not yet seen complete.
  public var inFlight: Bool { step >= 0 }

  /// Starts summing `buffer[range]` over the ranks, where `buffer` holds the `n` floats whose
  /// ring chunks fix the order. A communicator of size 1 or an empty range completes at once.
  public func start(_ buffer: UnsafeMutablePointer<Float>, _ kind: RangeReductionKind = .allReduce) {
    precondition(step < 0, "a reduction still in flight was started again")
    precondition(!gatherOnly || kind == .allGather, "a gather-only reduction has no scratch to reduce in")
    if comm.size == 1 || hi <= lo { return }
    self.buffer = buffer
    self.kind = kind
    startedNs = monotonicNanos()
    comm.activity.started(nowNs: startedNs)
    step = kind == .allGather ? comm.size - 1 : 0
    switch (comm.algorithm, kind) {
    case (.mpi, .allReduce):
      MPI_Iallreduce(cmpi_in_place(), buffer + lo, Int32(hi - lo), cmpi_float(), cmpi_op_sum(), comm.handle, requests)
    case (.mpi, .reduceScatter):
      MPI_Ireduce_scatter(buffer + lo, scratch, mpiCounts, cmpi_float(), cmpi_op_sum(), comm.handle, requests)
    case (.mpi, .allGather):
      precondition(lo == 0 && hi == n && n % comm.size == 0, "an MPI all-gather runs over the whole buffer in equal chunks")
      MPI_Iallgather(cmpi_in_place(), 0, cmpi_float(), buffer, Int32(n / comm.size), cmpi_float(), comm.handle, requests)
    case (.ring, _):
      postRingStep()
    }
  }

  /// True once ring chunk `chunk` of the buffer holds its final values here: this rank's own
  /// chunk at once, another's when the all-gather step that carries it is complete (with `.mpi`,
  /// when the whole gather is). Meaningful for an all-gather started on this object.
  @inline(__always)
  public func arrived(_ chunk: Int) -> Bool {
    if step < 0 || chunk == comm.rank { return true }
    if comm.algorithm == .mpi { return false }
    return ring.arrived(chunk, beforeStep: step)
  }

  /// Drives the reduction until chunk `chunk` has arrived (see `arrived(_:)`), booking the
  /// time blocked as exposed.
  public func wait(forChunk chunk: Int) {
    progress()
    if arrived(chunk) { return }
    block { self.progress(); return self.arrived(chunk) }
  }

  /// Drives the reduction: tests its requests and, when a ring step is complete, finishes it
  /// and posts the next. Returns true once the reduction is complete (or was never started).
  @discardableResult
  public func progress() -> Bool {
    while step >= 0 {
      if !testAll() { return false }
      if comm.algorithm == .mpi { complete(); return true }
      finishRingStep()
      step += 1
      if step == ringSteps { complete(); return true }
      postRingStep()
    }
    return true
  }

  /// Blocks until the reduction is complete and books the time blocked as exposed. Like the
  /// blocking collectives' waits it spins up to `Communicator.spinNanos`, then naps between
  /// tests and tells the wait observer, so a rank waiting here for a stopped peer keeps its
  /// heartbeat and spares its core.
  public func wait() {
    if progress() { return }
    block { self.progress() }
  }

  /// Drives the reduction until `done()` holds (it calls `progress()`), spinning, then napping.
  private func block(until done: () -> Bool) {
    let t0 = monotonicNanos()
    comm.waitObserver?.collectiveBegan(kind.collective, nowNs: t0)
    var nap: UInt32 = 20
    while !done() {
      if monotonicNanos() &- t0 < Communicator.spinNanos { continue }
      usleep(nap)
      comm.waitObserver?.collectiveWaiting(nowNs: monotonicNanos())
      nap = min(nap &* 2, Communicator.maxNapMicros)
    }
    comm.waitObserver?.collectiveEnded()
    comm.activity.waited(monotonicNanos() &- t0)
  }

  /// The step after the last: the reduce-scatter half runs steps 0..<p-1, the all-gather half
  /// p-1..<2(p-1).
  private var ringSteps: Int { kind == .reduceScatter ? ring.reduceScatterSteps.upperBound : ring.allGatherSteps.upperBound }

  private func complete() {
    if comm.algorithm == .mpi && kind == .reduceScatter {
      (buffer! + lo + ownStart).update(from: scratch, count: ownCount)
    }
    let now = monotonicNanos()
    comm.activity.finished(nowNs: now)
    comm.stats.record(bytes: (hi - lo) * 4, nanos: now &- startedNs)
    step = -1
  }

  @inline(__always)
  private func testAll() -> Bool {
    var all = true
    for i in 0..<2 {
      var done: Int32 = 0
      MPI_Test(requests + i, &done, cmpi_status_ignore())
      if done == 0 { all = false }
    }
    return all
  }

  /// Start of ring chunk `i` of the whole buffer, clamped to the range, relative to `lo`.
  @inline(__always)
  private func chunkStart(_ i: Int) -> Int {
    min(max(RingSchedule.chunkStart(i, of: n, ranks: comm.size), lo), hi) - lo
  }

  /// The chunks the current step sends and receives: the blocking ring's (`RingSchedule`).
  @inline(__always)
  private func chunks() -> (send: Int, recv: Int, reducing: Bool) {
    let c = ring.chunks(atStep: step)
    return (c.send, c.receive, c.reducing)
  }

  private func postRingStep() {
    let (right, left) = (ring.right, ring.left)
    let base = buffer! + lo
    let (send, recv, reducing) = chunks()
    let ss = chunkStart(send), sn = chunkStart(send + 1) - ss
    let rs = chunkStart(recv), rn = chunkStart(recv + 1) - rs
    precondition(!reducing || rn <= scratchCount, "range reduction scratch too small")
    let into = reducing ? UnsafeMutableRawPointer(scratch) : UnsafeMutableRawPointer(base + rs)
    MPI_Irecv(into, Int32(rn * 4), cmpi_byte(), left, tag, comm.handle, requests)
    MPI_Isend(base + ss, Int32(sn * 4), cmpi_byte(), right, tag, comm.handle, requests + 1)
  }

  private func finishRingStep() {
    let (_, recv, reducing) = chunks()
    guard reducing else { return }
    let rs = chunkStart(recv), rn = chunkStart(recv + 1) - rs
    let dst = buffer! + lo + rs
    for i in 0..<rn { dst[i] += scratch[i] }
  }
}

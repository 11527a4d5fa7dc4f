// Fork-join workers for all the work of a step when a rank has more than one core (TP=1 on a
// 2-core machine; TP=2 with 2+ cores per rank): the GEMMs (`pooledSgemm`, chunks of single-
// threaded OpenBLAS calls), the LayerNorms, GELU, softmax, attention's per-head products and
// AdamW. One set of threads for everything: OpenBLAS's own threads, spinning and yielding after
// each GEMM, took the cores the pool's next job needed (BENCHMARKS.md, 2026-12-07).
//
// The pool is created once, outside the step. A job is a small struct (`RangeJob`): the pool
// hands the other threads a pointer to it on the caller's stack plus its type, and joins them
// before returning, so a job allocates nothing (a closure would: making a non-escaping closure
// callable from other threads costs a heap-allocated wrapper per call). Workers spin briefly
// after each job and then sleep on a condition variable.
//
// Two ways to split a job:
// - `forEachRange`: one fixed range per thread (worker w always gets part w). For jobs that sum
//   into per-thread scratch, whose result may depend only on the thread count.
// - `forEachChunk`: chunks claimed from a shared counter by whichever thread is free, the caller
//   included, and the caller waits only for threads that joined. For jobs whose every chunk
//   computes the same bits whichever thread runs it (GEMM pieces, attention heads, element-wise
//   work). On a busy host a descheduled or sleeping worker then costs nothing: the caller takes
//   its chunks instead of spinning until it runs (a fixed split made the training thread wait
//   for its helper in every kernel).

import Glibc
import Synchronization

/// Work split over a pool: every thread runs `run(worker, range)` on its part of 0..<n.
public protocol RangeJob {
  /// The work on indices `range` (a part of the job's 0..<n), run by pool thread `worker`
  /// (0 is the calling thread; use it to pick the thread's scratch).
  func run(_ worker: Int, _ range: Range<Int>)
  /// Calls `run` on the job `job` points to (dispatch for the pool's threads).
  static func invoke(_ job: UnsafeRawPointer, _ worker: Int, _ range: Range<Int>)
}

extension RangeJob {
  /// Calls `run` on the job `job` points to.
  public static func invoke(_ job: UnsafeRawPointer, _ worker: Int, _ range: Range<Int>) {
    job.assumingMemoryBound(to: Self.self).pointee.run(worker, range)
  }
}

/// Fork-join threads for one rank's training thread: `forEachRange` splits a job's index range
/// over them and returns when all parts are done. Allocation-free per job.
/// A job over single indices (rows, elements) whose math is a row function: `run(i)` for every
/// index of the thread's part. The pool's `forEach` wraps it in a `RangeJob`.
protocol IndexJob {
  func run(_ i: Int)
}

/// The `RangeJob` that runs an `IndexJob` on each index of its range.
struct EachIndex<Job: IndexJob>: RangeJob {
  let job: Job
  @inline(__always)
  func run(_: Int, _ range: Range<Int>) {
    for i in range { job.run(i) }
  }
}

public final class WorkerPool: @unchecked Sendable {
  /// Threads taking part in each job, the caller included.
  public let threads: Int
  /// Floats of scratch each thread owns (`scratch(w)`), 64-byte aligned.
  public let scratchFloats: Int
  private let scratchBase: UnsafeMutablePointer<Float>
  private let shared = JobBoard()
  private var workers: [pthread_t] = []

  /// Runs every job on the calling thread; the default of the kernels.
  public static let serial = WorkerPool(threads: 1)

  /// Starts `threads − 1` helper threads (the caller is the last one) and gives every thread
  /// `scratchFloats` floats of scratch (rounded up to a multiple of 16).
  public init(threads: Int, scratchFloats: Int = 0) {
    self.threads = max(1, threads)
    self.scratchFloats = (scratchFloats + 15) / 16 * 16
    let total = max(16, self.scratchFloats * self.threads)
    scratchBase = UnsafeMutableRawPointer.allocate(byteCount: 4 * total, alignment: 64)
      .bindMemory(to: Float.self, capacity: total)
    scratchBase.initialize(repeating: 0, count: total)
    for index in 1..<self.threads {
      // the thread owns the board (not the pool), so dropping the pool stops and joins it
      let context = Unmanaged.passRetained(WorkerContext(board: shared, index: index)).toOpaque()
      var handle = pthread_t()
      if pthread_create(&handle, nil, workerMain, context) == 0 {
        workers.append(handle)
      } else {
        Unmanaged<WorkerContext>.fromOpaque(context).release()
      }
    }
  }

  deinit {
    shared.stop()
    for w in workers { pthread_join(w, nil) }
    scratchBase.deallocate()
  }

  /// Threads that actually run jobs (fewer than `threads` only if a thread could not start).
  public var width: Int { workers.count + 1 }

  /// Thread `w`'s scratch: `scratchFloats` floats no other thread touches.
  @inline(__always)
  public func scratch(_ w: Int) -> UnsafeMutablePointer<Float> { scratchBase + w * scratchFloats }

  /// Thread `w`'s scratch as doubles (`scratchFloats / 2` of them).
  @inline(__always)
  public func doubleScratch(_ w: Int) -> UnsafeMutablePointer<Double> {
    UnsafeMutableRawPointer(scratch(w)).assumingMemoryBound(to: Double.self)
  }

  /// Splits 0..<n into `width` contiguous ranges, each a multiple of `align` long except the
  /// last, runs `job.run(worker, range)` for every worker (a range may be empty; worker 0 is the
  /// calling thread) and returns when all have finished. One caller at a time (the rank's
  /// training thread), and a job must not use the pool itself.
  public func forEachRange<J: RangeJob>(_ n: Int, align: Int = 1, _ job: J) {
    let w = width
    if w == 1 { job.run(0, 0..<n); return }
    withUnsafePointer(to: job) { p in
      shared.post(UnsafeRawPointer(p), J.self, split: Split(n: n, align: align, width: w))
    }
  }
}

extension WorkerPool {
  /// Cuts 0..<n into `chunks` contiguous ranges (each a multiple of `align` long except the
  /// last; fewer chunks when n has fewer aligned units) and runs `job.run(worker, range)` once
  /// per chunk on whichever thread claims it first (worker 0 is the calling thread, which claims
  /// chunks too); returns when every chunk has finished. A thread may run several chunks, so
  /// `run` must not assume one call per worker, and a chunk's result must not depend on the
  /// thread that runs it. Helpers that have not woken by the time the chunks are gone are not
  /// waited for. One caller at a time; a job must not use the pool itself.
  public func forEachChunk<J: RangeJob>(_ n: Int, chunks: Int, align: Int = 1, _ job: J) {
    let units = (n + align - 1) / max(1, align)
    let count = min(max(1, chunks), max(1, units))
    if width == 1 || count == 1 { job.run(0, 0..<n); return }
    withUnsafePointer(to: job) { p in
      shared.postChunks(UnsafeRawPointer(p), J.self, split: Split(n: n, align: align, width: count))
    }
  }

  /// Chunks per thread of the element-, row- and column-wise kernels' `forEachChunk`: enough
  /// that a thread that starts late leaves little for the others to wait on.
  public static let chunksPerThread = 4

  /// `forEachChunk` with `chunksPerThread` chunks per thread: for jobs whose indices are
  /// independent (rows, elements, columns that one thread sums whole).
  @inline(__always)
  public func forEachClaimed<J: RangeJob>(_ n: Int, align: Int = 1, _ job: J) {
    forEachChunk(n, chunks: width * Self.chunksPerThread, align: align, job)
  }

  /// `job.run(i)` for every i in 0..<n, in chunks claimed by the pool's threads
  /// (`forEachClaimed`): every index's result is its own.
  @inline(__always)
  func forEach<Job: IndexJob>(_ n: Int, align: Int = 1, _ job: Job) {
    forEachClaimed(n, align: align, EachIndex(job: job))
  }
}

/// How 0..<n is cut into `width` aligned ranges.
struct Split {
  var n = 0, align = 1, width = 1
  func range(_ i: Int) -> Range<Int> {
    let units = (n + align - 1) / align
    return min(n, units * i / width * align)..<min(n, units * (i + 1) / width * align)
  }
}

/// What the pool's threads share: the current job, its number, and the sleep/wake machinery.
private final class JobBoard: @unchecked Sendable {
  /// Jobs posted so far, times 2, plus 1 when the latest is a chunked job.
  let generation = Atomic<Int>(0)
  let pending = Atomic<Int>(0)
  /// Chunked jobs: `closed` (no more joiners) plus the helpers that joined and have not left.
  /// Static jobs leave it closed.
  let membership = Atomic<Int>(JobBoard.closed)
  /// The next unclaimed chunk of a chunked job.
  let cursor = Atomic<Int>(0)
  static let closed = 1 << 40
  let sleepers = Atomic<Int>(0)
  let stopping = Atomic<Bool>(false)
  var job: UnsafeRawPointer?
  var jobType: (any RangeJob.Type)?
  var split = Split()
  let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
  let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

  /// Polls of the job counter before a worker goes to sleep (a few microseconds).
  static let spinPolls = 4000

  init() {
    pthread_mutex_init(mutex, nil)
    pthread_cond_init(wake, nil)
  }

  deinit {
    pthread_cond_destroy(wake)
    pthread_mutex_destroy(mutex)
    mutex.deallocate()
    wake.deallocate()
  }

  /// Publishes the job to the helpers, runs part 0 here, and waits for theirs. `job` must stay
  /// valid until this returns.
  func post(_ job: UnsafeRawPointer, _ type: any RangeJob.Type, split: Split) {
    self.job = job
    jobType = type
    self.split = split
    pending.store(split.width - 1, ordering: .relaxed)
    generation.store(nextGeneration(chunked: false), ordering: .sequentiallyConsistent)  // publishes the job
    // a worker registers as a sleeper before its last look at `generation` (both sequentially
    // consistent), so either it sees the new job or this sees it asleep
    if sleepers.load(ordering: .sequentiallyConsistent) > 0 { broadcast() }
    type.invoke(job, 0, split.range(0))
    while pending.load(ordering: .acquiring) > 0 {}
    self.job = nil
    jobType = nil
  }

  /// The generation word of the next job (a counter times 2, plus 1 for a chunked job).
  private func nextGeneration(chunked: Bool) -> Int {
    (generation.load(ordering: .relaxed) >> 1 + 1) << 1 | (chunked ? 1 : 0)
  }

  /// Publishes a chunked job, claims chunks here until none is left, then closes the job to
  /// late helpers and waits for the ones that joined. `job` must stay valid until this returns.
  func postChunks(_ job: UnsafeRawPointer, _ type: any RangeJob.Type, split: Split) {
    // no helper is inside a job here: the last one closed with none left, and a late helper
    // that finds a job closed leaves without reading it
    self.job = job
    jobType = type
    self.split = split
    cursor.store(0, ordering: .relaxed)
    membership.subtract(Self.closed, ordering: .sequentiallyConsistent)  // open to joiners
    generation.store(nextGeneration(chunked: true), ordering: .sequentiallyConsistent)
    if sleepers.load(ordering: .sequentiallyConsistent) > 0 { broadcast() }
    runChunks(worker: 0)
    membership.add(Self.closed, ordering: .sequentiallyConsistent)
    while membership.load(ordering: .acquiring) != Self.closed {}
    self.job = nil
    jobType = nil
  }

  /// Claims and runs chunks of the open chunked job until none is left.
  @inline(__always)
  private func runChunks(worker: Int) {
    guard let job, let jobType else { return }
    let split = self.split
    while true {
      let c = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
      if c >= split.width { return }
      jobType.invoke(job, worker, split.range(c))
    }
  }

  func stop() {
    stopping.store(true, ordering: .sequentiallyConsistent)
    broadcast()
  }

  private func broadcast() {
    pthread_mutex_lock(mutex)
    pthread_cond_broadcast(wake)
    pthread_mutex_unlock(mutex)
  }

  func workerLoop(index: Int) {
    // jobs are counted from 0 at creation: a thread that starts late still sees the first one
    var seen = 0
    while true {
      var polls = 0
      while generation.load(ordering: .acquiring) == seen && polls < Self.spinPolls
        && !stopping.load(ordering: .relaxed) { polls += 1 }
      if generation.load(ordering: .acquiring) == seen {
        pthread_mutex_lock(mutex)
        sleepers.add(1, ordering: .sequentiallyConsistent)
        while generation.load(ordering: .sequentiallyConsistent) == seen && !stopping.load(ordering: .sequentiallyConsistent) {
          pthread_cond_wait(wake, mutex)
        }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(mutex)
      }
      let current = generation.load(ordering: .acquiring)
      if current == seen { return }  // woken to stop
      seen = current
      if current & 1 == 0 {
        // a static job: the caller waits for every helper, so it is still this one
        if let job, let jobType { jobType.invoke(job, index, split.range(index)) }
        pending.subtract(1, ordering: .releasing)
      } else {
        // a chunked job, or a later one: join only while it is open (then its fields stay put
        // until this helper leaves)
        if membership.wrappingAdd(1, ordering: .sequentiallyConsistent).oldValue & Self.closed == 0 {
          runChunks(worker: index)
        }
        membership.subtract(1, ordering: .releasing)
      }
    }
  }
}

private final class WorkerContext {
  let board: JobBoard
  let index: Int
  init(board: JobBoard, index: Int) { self.board = board; self.index = index }
}

private func workerMain(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
  let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
  AllocationProbe.trackCurrentThread()
  context.board.workerLoop(index: context.index)
  return nil
}

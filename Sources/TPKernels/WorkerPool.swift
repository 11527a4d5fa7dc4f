// Fork-join workers for the work of a step that is not a GEMM, when a rank has more than one
// core (TP=1 on a 2-core machine; TP=2 with 2+ cores per rank). OpenBLAS already spreads each
// GEMM over the rank's threads; without this pool the LayerNorms, GELU, softmax, attention's
// per-head products and AdamW would run on one core while the others idle.
//
// The pool is created once, outside the step. A job is a small struct (`RangeJob`): the pool
// hands the other threads a pointer to it on the caller's stack plus its type, and joins them
// before returning, so a job allocates nothing (a closure would: making a non-escaping closure
// callable from other threads costs a heap-allocated wrapper per call). Workers spin briefly
// after each job and then sleep on a condition variable, so they leave the cores to OpenBLAS
// during the GEMMs in between.

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
  /// `job.run(i)` for every i in 0..<n, split as `forEachRange` splits it.
  @inline(__always)
  func forEach<Job: IndexJob>(_ n: Int, align: Int = 1, _ job: Job) {
    forEachRange(n, align: align, EachIndex(job: job))
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
  let generation = Atomic<Int>(0)
  let pending = Atomic<Int>(0)
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
    generation.add(1, ordering: .sequentiallyConsistent)  // publishes the job
    // a worker registers as a sleeper before its last look at `generation` (both sequentially
    // consistent), so either it sees the new job or this sees it asleep
    if sleepers.load(ordering: .sequentiallyConsistent) > 0 { broadcast() }
    type.invoke(job, 0, split.range(0))
    while pending.load(ordering: .acquiring) > 0 {}
    self.job = nil
    jobType = nil
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
      if generation.load(ordering: .acquiring) == seen { return }  // woken to stop
      seen += 1
      if let job, let jobType { jobType.invoke(job, index, split.range(index)) }
      pending.subtract(1, ordering: .releasing)
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

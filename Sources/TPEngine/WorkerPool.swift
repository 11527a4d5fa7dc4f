// Fork-join workers for the work of a step that is not a GEMM, when a rank has more than one
// core (TP=1 on a 2-core machine; TP=2 with 2+ cores per rank). OpenBLAS already spreads each
// GEMM over the rank's threads; without this pool the LayerNorms, GELU, softmax, attention's
// per-head products and AdamW would run on one core while the others idle.
//
// The pool is created once, outside the step; `run` hands a non-escaping closure to the
// workers and joins them before returning, so it allocates nothing. Workers spin briefly after
// each job and then sleep on a condition variable, so they leave the cores to OpenBLAS during
// the GEMMs in between.

import Glibc
import Synchronization

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

  /// Runs `body(w)` for every worker index w in 0..<width (0 on the calling thread) and returns
  /// when all have finished.
  public func run(_ body: (Int) -> Void) {
    let n = width
    if n == 1 { body(0); return }
    withoutActuallyEscaping(body) { body in shared.post(body, helpers: n - 1) }
  }

  /// Splits 0..<n into `width` contiguous ranges, each a multiple of `align` long except the
  /// last, and runs `body(worker, range)` for every worker (a range may be empty).
  public func forEachRange(_ n: Int, align: Int = 1, _ body: (Int, Range<Int>) -> Void) {
    let w = width
    if w == 1 { body(0, 0..<n); return }
    let units = (n + align - 1) / align
    run { i in
      let lo = min(n, units * i / w * align), hi = min(n, units * (i + 1) / w * align)
      body(i, lo..<hi)
    }
  }
}

/// What the pool's threads share: the current job, its number, and the sleep/wake machinery.
private final class JobBoard: @unchecked Sendable {
  let generation = Atomic<Int>(0)
  let pending = Atomic<Int>(0)
  let sleepers = Atomic<Int>(0)
  let stopping = Atomic<Bool>(false)
  var job: ((Int) -> Void)?
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

  /// Publishes `body` to the helpers, runs its share 0 here, and waits for theirs. `body` must
  /// not outlive this call (the caller passes a closure made escapable for its duration).
  func post(_ body: @escaping (Int) -> Void, helpers: Int) {
    job = body
    pending.store(helpers, ordering: .relaxed)
    generation.add(1, ordering: .sequentiallyConsistent)  // publishes `job`
    // a worker registers as a sleeper before its last look at `generation` (both sequentially
    // consistent), so either it sees the new job or this sees it asleep
    if sleepers.load(ordering: .sequentiallyConsistent) > 0 { broadcast() }
    body(0)
    while pending.load(ordering: .acquiring) > 0 {}
    job = nil
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
      job?(index)
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
  context.board.workerLoop(index: context.index)
  return nil
}

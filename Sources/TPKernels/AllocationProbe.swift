// Counts heap allocations when the process runs with the counting preload used by the tests
// (Tests/Fixtures/alloccount.c). The training thread and the worker pool's threads register
// themselves; the count is their allocations only, so MPI's and OpenBLAS's own threads are not
// charged to the step. Without the preload the probe is inactive and costs one predictable branch.

import Glibc

public enum AllocationProbe {
  typealias CountFunction = @convention(c) () -> Int
  typealias TrackFunction = @convention(c) () -> Void
  static let counter: CountFunction? = {
    guard let sym = dlsym(nil, "tptop_tracked_allocations") else { return nil }
    return unsafeBitCast(sym, to: CountFunction.self)
  }()
  static let tracker: TrackFunction? = {
    guard let sym = dlsym(nil, "tptop_track_thread") else { return nil }
    return unsafeBitCast(sym, to: TrackFunction.self)
  }()

  /// Whether the counting preload is present.
  public static var isActive: Bool { counter != nil }

  /// Counts the calling thread's allocations from now on (the training thread, pool workers).
  public static func trackCurrentThread() { tracker?() }

  /// malloc/calloc/realloc/aligned calls made so far by all registered threads (0 when inactive).
  @inline(__always) public static func count() -> Int { counter?() ?? 0 }
}

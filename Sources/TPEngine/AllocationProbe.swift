// Counts heap allocations when the process runs with the counting preload used by the tests
// (Tests/Fixtures/alloccount.c exports `tptop_thread_allocations`, the calling thread's count).
// Without the
// preload the probe is inactive and costs one predictable branch.

import Glibc

public enum AllocationProbe {
  typealias CountFunction = @convention(c) () -> Int
  static let counter: CountFunction? = {
    guard let sym = dlsym(nil, "tptop_thread_allocations") else { return nil }
    return unsafeBitCast(sym, to: CountFunction.self)
  }()

  /// Whether the counting preload is present.
  public static var isActive: Bool { counter != nil }

  /// malloc/calloc/realloc/aligned calls made by the calling thread so far (0 when inactive).
  @inline(__always) public static func count() -> Int { counter?() ?? 0 }
}

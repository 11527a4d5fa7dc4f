// Large float buffers (parameters, gradients, optimizer moments, activations) come straight
// from mmap, 2 MiB aligned and advised to use transparent huge pages: the GEMMs' packing
// routines stream through these buffers with large strides, and 4 KiB pages cost TLB misses.

import Glibc

enum Arena {
  static let hugePage = 2 << 20

  /// `count` zeroed floats, 2 MiB aligned. Falls back to the allocator if mmap fails.
  static func allocate(_ count: Int) -> FloatPtr {
    let bytes = roundedBytes(count)
    let raw = mmap(nil, bytes + hugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let raw, raw != MAP_FAILED else {
      let p = FloatPtr.allocate(capacity: count)
      p.initialize(repeating: 0, count: count)
      return p
    }
    // trim to a 2 MiB boundary so whole huge pages can back the buffer
    let start = Int(bitPattern: raw)
    let aligned = (start + hugePage - 1) & ~(hugePage - 1)
    if aligned > start { munmap(raw, aligned - start) }
    let tail = hugePage - (aligned - start)
    if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + bytes), tail) }
    let p = UnsafeMutableRawPointer(bitPattern: aligned)!
    _ = madvise(p, bytes, MADV_HUGEPAGE)
    return p.bindMemory(to: Float.self, capacity: count)
  }

  static func deallocate(_ p: FloatPtr, _ count: Int) {
    munmap(UnsafeMutableRawPointer(p), roundedBytes(count))
  }

  private static func roundedBytes(_ count: Int) -> Int {
    max(hugePage, (count * 4 + hugePage - 1) & ~(hugePage - 1))
  }
}

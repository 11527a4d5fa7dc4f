// Large float buffers (parameters, gradients, optimizer moments, activations) come straight
// from mmap, 2 MiB aligned and advised to use transparent huge pages: the GEMMs' packing
// routines stream through these buffers with large strides, and 4 KiB pages cost TLB misses.

import Foundation
import Glibc
import TPKernels

enum Arena {
  static let hugePage = 2 << 20

  /// `count` zeroed floats, 2 MiB aligned; `what` names the buffer in the error.
  static func allocate(_ count: Int, _ what: String) throws -> FloatPtr {
    let bytes = roundedBytes(count)
    let raw = mmap(nil, bytes + hugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let raw, raw != MAP_FAILED else {
      let gib = Double(count) * 4 / Double(1 << 30)
      throw EngineError(String(format: "cannot allocate %.2f GiB for the %@ on this rank (%@); use a smaller model, batch or sequence length, or spread the ranks over more nodes",
                               gib, what, String(cString: strerror(errno))))
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

  /// MemAvailable of /proc/meminfo in bytes, or nil where it cannot be read.
  static func availableBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
      let kib = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
    else { return nil }
    return kib * 1024
  }

  static func deallocate(_ p: FloatPtr, _ count: Int) {
    munmap(UnsafeMutableRawPointer(p), roundedBytes(count))
  }

  private static func roundedBytes(_ count: Int) -> Int {
    max(hugePage, (count * 4 + hugePage - 1) & ~(hugePage - 1))
  }
}

// OpenBLAS 0.3.21 does not recognise recent Xeons (e.g. Sapphire/Emerald Rapids) and falls back
// to its SSE3 "Prescott" kernels, 5× slower than its AVX-512 ones. The core type can only be
// chosen through OPENBLAS_CORETYPE before the library initialises, so tptrain re-executes itself
// once with it set when the detected core is a generic one and the CPU has better instructions.

import Glibc
import TPKernels

public enum BLASTuning {
  /// The kernel family OpenBLAS chose.
  public static var coreName: String { BLAS.coreName }

  static let genericCores: Set<String> = ["prescott", "core2", "katmai", "coppermine", "northwood", "banias", "atom", "nehalem", "unknown"]

  /// The OPENBLAS_CORETYPE to use instead of the detected one, or nil to keep it.
  public static func preferredCoreType() -> String? {
    guard genericCores.contains(coreName.lowercased()) else { return nil }
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
      let flagsLine = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return nil }
    let flags = Set(flagsLine.split(separator: " ").map(String.init))
    if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]) { return "SkylakeX" }
    if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
    return nil
  }

  /// Re-executes the current process with OPENBLAS_CORETYPE set when that gives faster
  /// kernels. Call first thing in main, before MPI starts. No-op when the variable is already
  /// set, when TPTRAIN_BLAS_AUTOTUNE=0, or when the detected core is already specific.
  public static func reexecWithBetterCoreIfNeeded() {
    if getenv("OPENBLAS_CORETYPE") != nil { return }
    if let v = getenv("TPTRAIN_BLAS_AUTOTUNE"), String(cString: v) == "0" { return }
    guard let core = preferredCoreType() else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    execv("/proc/self/exe", CommandLine.unsafeArgv)
    // exec failed: carry on with the generic kernels
  }
}

/// Sets the OpenBLAS thread count for this process given the rank's share of cores `n`: 1 when
/// the engine's worker pool splits the GEMMs (`PooledGEMM.enabled`, the default), else `n`.
public func setBLASThreads(_ n: Int) { BLAS.setThreads(PooledGEMM.enabled ? 1 : n) }

extension BLASTuning {
  /// Single-core sgemm throughput in GFLOP/s, the peak MFU is measured against: square
  /// n×n×n products on one OpenBLAS thread, repeated for at least `seconds`, best call.
  /// Timing a long series (not a handful of calls) lets the core reach its sustained clock and
  /// the caches settle, so the figure is what the core can really do, not a cold underestimate.
  /// `median` is the series' median call: far below `peak` when the host is busy.
  public static func measureSingleCorePeak(n: Int = 1024, seconds: Double = 2) -> (peak: Double, median: Double) {
    BLAS.setThreads(1)
    let a = FloatPtr.allocate(capacity: n * n), b = FloatPtr.allocate(capacity: n * n), c = FloatPtr.allocate(capacity: n * n)
    defer { a.deallocate(); b.deallocate(); c.deallocate() }
    for i in 0..<(n * n) { a[i] = Float(i % 7) * 1e-3; b[i] = Float(i % 5) * 1e-3 }
    c.initialize(repeating: 0, count: n * n)
    @inline(__always) func now() -> Double {
      var t = timespec()
      clock_gettime(CLOCK_MONOTONIC, &t)
      return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
    var times: [Double] = []
    let start = now()
    while times.count < 10 || now() - start < seconds {
      let t0 = now()
      sgemm(transA: false, transB: true, m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, beta: 0, c: c, ldc: n)
      times.append(now() - t0)
    }
    times.sort()
    let flops = 2 * Double(n * n * n) / 1e9
    return (flops / times[0], flops / times[times.count / 2])
  }
}

// The only code that calls OpenBLAS: one sgemm wrapper and the library's thread count and
// kernel family, which the engine reads and sets through `BLAS`.

import CBLAS

/// Row-major C (m,n) = alpha · op(A) · op(B) + beta · C with explicit leading dimensions
/// (op(A) is (m,k), op(B) is (k,n); `trans` reads the stored matrix transposed).
@inline(__always)
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: FloatPtr, ldc: Int) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
}

/// The process's OpenBLAS library.
public enum BLAS {
  /// Sets the number of threads OpenBLAS runs each GEMM on (at least 1) for this process.
  public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

  /// The kernel family OpenBLAS chose for this CPU (e.g. "Haswell"; "unknown" if it says none).
  public static var coreName: String {
    guard let p = openblas_get_corename() else { return "unknown" }
    return String(cString: p)
  }
}

/// Runs `body` with OpenBLAS on one thread when the pool has several (each pool thread then
/// runs its own GEMMs), restoring the thread count after.
@inline(__always)
func withSingleThreadedBLAS(_ pool: WorkerPool, _ body: () -> Void) {
  if pool.width == 1 { body(); return }
  let previous = openblas_get_num_threads()
  openblas_set_num_threads(1)
  body()
  openblas_set_num_threads(previous)
}

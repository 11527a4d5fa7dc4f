// The only code that calls OpenBLAS: one sgemm wrapper, the pool-split sgemm every layer's GEMM
// goes through, and the library's thread count and kernel family, which the engine reads and
// sets through `BLAS`.

import CBLAS
import Glibc

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

/// `sgemm` with C's rows (or columns) cut into chunks that the pool's threads claim, each chunk
/// one single-threaded OpenBLAS call: the rank's threads run the GEMMs through the same pool as
/// every other kernel, and OpenBLAS never starts its own threads (with `BLAS.setThreads(1)`).
/// OpenBLAS's threaded GEMM keeps its threads in step inside every call and its idle threads
/// spin and yield for milliseconds after it, on the cores the pool's next job needs; here a
/// thread that is late (a busy host) only leaves its chunks to the others.
///
/// The cut is on the dimension whose operand each chunk packs again: rows when C is no wider
/// than tall (each chunk packs all of B, k·n), columns otherwise (each packs all of A, m·k).
/// Chunks start at multiples of 64 rows or columns (`PooledGEMM.chunks` says how many). Every
/// element is the same dot product over k as in the whole call (k is never cut).
public func pooledSgemm(pool: WorkerPool, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                        beta: Float, c: FloatPtr, ldc: Int) {
  struct Piece: RangeJob {
    let transA: Bool, transB: Bool, byRows: Bool, m: Int, n: Int, k: Int, alpha: Float
    let a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float, c: FloatPtr, ldc: Int
    func run(_: Int, _ r: Range<Int>) {
      if r.isEmpty { return }
      if byRows {
        // rows r of C: rows r of op(A) (columns r of A when A is stored transposed)
        sgemm(transA: transA, transB: transB, m: r.count, n: n, k: k, alpha: alpha,
              a: transA ? a + r.lowerBound : a + r.lowerBound * lda, lda: lda, b: b, ldb: ldb,
              beta: beta, c: c + r.lowerBound * ldc, ldc: ldc)
      } else {
        // columns r of C: columns r of op(B) (rows r of B when B is stored transposed)
        sgemm(transA: transA, transB: transB, m: m, n: r.count, k: k, alpha: alpha, a: a, lda: lda,
              b: transB ? b + r.lowerBound * ldb : b + r.lowerBound, ldb: ldb,
              beta: beta, c: c + r.lowerBound, ldc: ldc)
      }
    }
  }
  if !PooledGEMM.enabled || pool.width == 1 {
    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
          beta: beta, c: c, ldc: ldc)
    return
  }
  let byRows = n <= m
  let extent = byRows ? m : n
  let chunks = PooledGEMM.chunks(extent, threads: pool.width)
  pool.forEachChunk(extent, chunks: chunks, align: PooledGEMM.align,
                    Piece(transA: transA, transB: transB, byRows: byRows, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                          b: b, ldb: ldb, beta: beta, c: c, ldc: ldc))
}

/// How `pooledSgemm` cuts a product.
public enum PooledGEMM {
  /// Whether the pool splits the GEMMs (OpenBLAS then runs on one thread per rank); false with
  /// TPTRAIN_POOLED_GEMM=0, which gives each GEMM to OpenBLAS's own threads as before (for
  /// comparisons).
  public static let enabled: Bool = {
    guard let v = getenv("TPTRAIN_POOLED_GEMM") else { return true }
    return String(cString: v) != "0"
  }()
  /// Chunks start at multiples of this many rows or columns (where OpenBLAS's kernels compute
  /// each element as in the whole product).
  public static let align = 64
  /// The shortest chunk when there are more chunks than threads: each chunk packs the other
  /// operand again.
  public static let minChunk = 128

  /// Chunks for a cut dimension of `extent`: `chunksPerThread` per thread when each is at least
  /// `minChunk` long, else one per thread (so a short dimension is not cut into chunks of
  /// unequal counts per thread, e.g. 3 chunks on 2 threads), else as many as there are
  /// 64-wide units.
  public static func chunks(_ extent: Int, threads: Int) -> Int {
    if extent >= threads * chunksPerThread * minChunk { return threads * chunksPerThread }
    return min(threads, (extent + align - 1) / align)
  }
  /// Chunks per thread at most: more balance a late thread better, fewer pack less.
  public static let chunksPerThread = 2
}

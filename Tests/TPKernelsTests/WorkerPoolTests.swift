import XCTest
@testable import TPKernels

/// The worker pool splits work exactly once over its threads, survives many fork-joins with
/// sleeping workers, and every kernel that takes a pool computes what it computes alone.
final class WorkerPoolTests: XCTestCase {
  typealias Buf = LayerGradientTests.Buf
  typealias Rng = LayerGradientTests.Rng

  /// Counts, per index, how many threads covered it, and per thread how often it was called
  /// and whether its range started off the alignment.
  final class Tally {
    let hits: UnsafeMutablePointer<Int32>, calls: UnsafeMutablePointer<Int>, misaligned: UnsafeMutablePointer<Int>
    init(n: Int, threads: Int) {
      hits = .allocate(capacity: max(1, n))
      calls = .allocate(capacity: threads)
      misaligned = .allocate(capacity: threads)
      hits.initialize(repeating: 0, count: max(1, n))
      calls.initialize(repeating: 0, count: threads)
      misaligned.initialize(repeating: 0, count: threads)
    }
    deinit { hits.deallocate(); calls.deallocate(); misaligned.deallocate() }
    func job(align: Int = 1) -> Cover { Cover(hits: hits, calls: calls, misaligned: misaligned, align: align) }
  }

  struct Cover: RangeJob {
    let hits: UnsafeMutablePointer<Int32>, calls: UnsafeMutablePointer<Int>, misaligned: UnsafeMutablePointer<Int>
    let align: Int
    func run(_ w: Int, _ r: Range<Int>) {
      calls[w] += 1
      if !r.isEmpty && r.lowerBound % align != 0 { misaligned[w] += 1 }
      for i in r { hits[i] += 1 }
    }
  }

  func testRangesCoverEveryIndexOnceForAnyWidth() {
    for threads in 1...4 {
      let pool = WorkerPool(threads: threads)
      XCTAssertEqual(pool.width, threads)
      for (n, align) in [(0, 1), (1, 1), (3, 1), (7, 1), (100, 8), (1000, 64), (5, 16), (4097, 64)] {
        let tally = Tally(n: n, threads: threads)
        pool.forEachRange(n, align: align, tally.job(align: align))
        for i in 0..<n { XCTAssertEqual(tally.hits[i], 1, "threads \(threads) n \(n) align \(align) index \(i)") }
        for w in 0..<threads {
          XCTAssertEqual(tally.calls[w], 1, "each thread is called once (threads \(threads), n \(n))")
          XCTAssertEqual(tally.misaligned[w], 0, "ranges start on the alignment (threads \(threads), n \(n))")
        }
      }
    }
  }

  func testManyJoinsWithSleepingWorkers() {
    let pool = WorkerPool(threads: 3)
    let tally = Tally(n: 3, threads: 3)
    let job = tally.job()
    for round in 0..<3000 {
      pool.forEachRange(3, job)
      // now and then let the workers fall asleep, so both the spinning and the wake-up paths run
      if round % 500 == 0 { usleep(2000) }
      XCTAssertEqual(tally.calls[0] + tally.calls[1] + tally.calls[2], 3 * (round + 1))
    }
    for i in 0..<3 { XCTAssertEqual(tally.hits[i], 3000) }
  }

  func testClaimedChunksCoverEveryIndexOnceForAnyWidth() {
    for threads in 1...4 {
      let pool = WorkerPool(threads: threads)
      for (n, align, chunks) in [(0, 1, 4), (1, 1, 8), (7, 1, 3), (100, 8, 5), (1000, 64, 8), (4097, 64, 16), (48, 1, 48)] {
        let tally = Tally(n: n, threads: threads)
        pool.forEachChunk(n, chunks: chunks, align: align, tally.job(align: align))
        for i in 0..<n { XCTAssertEqual(tally.hits[i], 1, "threads \(threads) n \(n) chunks \(chunks) index \(i)") }
        for w in 0..<threads { XCTAssertEqual(tally.misaligned[w], 0, "chunks start on the alignment") }
      }
    }
  }

  /// Chunked and fixed-split jobs one after another, with workers now spinning, now asleep,
  /// now late: every index of every job is covered once and no job runs after it returned.
  func testChunkedAndStaticJobsInterleave() {
    let pool = WorkerPool(threads: 3)
    let tally = Tally(n: 64, threads: 3)
    let job = tally.job()
    for round in 0..<4000 {
      if round % 3 == 0 { pool.forEachRange(64, job) } else { pool.forEachChunk(64, chunks: 1 + round % 9, job) }
      if round % 700 == 0 { usleep(2000) }
      XCTAssertEqual(tally.hits[round % 64], Int32(round + 1))
    }
    for i in 0..<64 { XCTAssertEqual(tally.hits[i], 4000) }
  }

  /// The pool-split GEMM computes every element as one single-threaded call does (k is never
  /// cut; chunks start at multiples of 64 rows or columns), for each kind of product the layers
  /// run: bitwise on OpenBLAS's AVX-512 kernels, and within a few ulps on the others.
  func testPooledGEMMMatchesTheWholeProduct() {
    var rng = Rng(s: 23)
    BLAS.setThreads(1)  // as the engine runs it: the pool's threads call single-threaded OpenBLAS
    let pool = WorkerPool(threads: 3)
    let avx512 = ["skylakex", "cooperlake", "sapphirerapids"].contains(BLAS.coreName.lowercased())
    for (ta, tb, m, n, k) in [(false, true, 512, 192, 96), (false, false, 512, 96, 160), (true, false, 320, 96, 512),
                              (true, false, 96, 448, 512), (false, true, 130, 70, 33)] {
      let a = Buf(m * k, &rng), b = Buf(k * n, &rng), c1 = Buf(m * n, &rng), c2 = Buf(zeros: m * n)
      c2.p.update(from: c1.p, count: m * n)
      let (lda, ldb) = (ta ? m : k, tb ? k : n)
      sgemm(transA: ta, transB: tb, m: m, n: n, k: k, a: a.p, lda: lda, b: b.p, ldb: ldb, beta: 0.5, c: c1.p, ldc: n)
      pooledSgemm(pool: pool, transA: ta, transB: tb, m: m, n: n, k: k, a: a.p, lda: lda, b: b.p, ldb: ldb, beta: 0.5,
                  c: c2.p, ldc: n)
      // a cut dimension that is not a multiple of 64 leaves a short last chunk, which OpenBLAS
      // may give to its small-matrix kernels: there only close (the engine's dimensions are
      // multiples of 64)
      let aligned = (n <= m ? m : n) % PooledGEMM.align == 0
      for i in 0..<(m * n) {
        if avx512 && aligned { XCTAssertEqual(c1[i], c2[i], "\(m)×\(n)×\(k) element \(i)") }
        else { XCTAssertEqual(c1[i], c2[i], accuracy: 1e-5 * max(1, abs(c1[i])), "\(m)×\(n)×\(k) element \(i)") }
      }
    }
  }

  func testPoolIsReleasedWithItsThreads() {
    weak var weakPool: WorkerPool?
    do {
      let pool = WorkerPool(threads: 2, scratchFloats: 10)
      weakPool = pool
      let tally = Tally(n: 4, threads: 2)
      pool.forEachRange(4, tally.job())
      XCTAssertEqual(tally.calls[0] + tally.calls[1], 2)
      XCTAssertEqual(pool.scratchFloats, 16)  // rounded up to 64 bytes
    }
    XCTAssertNil(weakPool)
  }

  func testKernelsGiveTheSameResultsOnAPool() {
    var rng = Rng(s: 21)
    let pool = WorkerPool(threads: 3, scratchFloats: 64 * 64)
    let (N, C, OC) = (37, 24, 52)
    // LayerNorm forward/backward (column sums from per-thread parts)
    let x = Buf(N * C, &rng, scale: 2), w = Buf(C, &rng), b = Buf(C, &rng), dout = Buf(N * C, &rng)
    let out1 = Buf(zeros: N * C), out2 = Buf(zeros: N * C), m1 = Buf(zeros: N), m2 = Buf(zeros: N)
    let r1 = Buf(zeros: N), r2 = Buf(zeros: N)
    layernormForward(out1.p, m1.p, r1.p, x.p, w.p, b.p, N, C)
    layernormForward(out2.p, m2.p, r2.p, x.p, w.p, b.p, N, C, pool: pool)
    for i in 0..<(N * C) { XCTAssertEqual(out1[i], out2[i]) }
    let dx1 = Buf(zeros: N * C), dx2 = Buf(zeros: N * C), dw1 = Buf(zeros: C), dw2 = Buf(C, &rng)
    let db1 = Buf(zeros: C), db2 = Buf(C, &rng), cs1 = Buf(zeros: C), cs2 = Buf(C, &rng)
    layernormBackward(dx1.p, dw1.p, db1.p, dout.p, x.p, w.p, m1.p, r1.p, N, C, accumulateInput: false, dinpColumnSums: cs1.p)
    layernormBackward(dx2.p, dw2.p, db2.p, dout.p, x.p, w.p, m1.p, r1.p, N, C, accumulateInput: false, dinpColumnSums: cs2.p,
                      pool: pool)
    for i in 0..<(N * C) { XCTAssertEqual(dx1[i], dx2[i]) }
    for c in 0..<C {
      XCTAssertEqual(dw1[c], dw2[c], accuracy: 1e-5)
      XCTAssertEqual(db1[c], db2[c], accuracy: 1e-5)
      XCTAssertEqual(cs1[c], cs2[c], accuracy: 1e-5)
    }
    // GELU and bias column sums (columns split: exact)
    let h = Buf(N * OC, &rng, scale: 3), g1 = Buf(zeros: N * OC), g2 = Buf(zeros: N * OC)
    geluForward(g1.p, h.p, N * OC)
    geluForward(g2.p, h.p, N * OC, pool: pool)
    for i in 0..<(N * OC) { XCTAssertEqual(g1[i], g2[i]) }
    let d = Buf(N * OC, &rng), d1 = Buf(zeros: N * OC), d2 = Buf(zeros: N * OC), gb1 = Buf(zeros: OC), gb2 = Buf(OC, &rng)
    d1.p.update(from: d.p, count: N * OC)
    d2.p.update(from: d.p, count: N * OC)
    geluBiasBackward(d1.p, gb1.p, h.p, N, OC)
    geluBiasBackward(d2.p, gb2.p, h.p, N, OC, pool: pool)
    for i in 0..<(N * OC) { XCTAssertEqual(d1[i], d2[i]) }
    for o in 0..<OC { XCTAssertEqual(gb1[o], gb2[o]) }
    let bb1 = Buf(zeros: OC), bb2 = Buf(OC, &rng)
    biasBackward(bb1.p, d.p, N, OC)
    biasBackward(bb2.p, d.p, N, OC, pool: pool)
    for o in 0..<OC { XCTAssertEqual(bb1[o], bb2[o]) }
  }

  func testAttentionGivesTheSameResultsOnAPool() {
    var rng = Rng(s: 22)
    let (B, T, NH, hs) = (2, 70, 3, 8)  // T past one attention block
    let pool = WorkerPool(threads: 2, scratchFloats: T * T)
    let CL = NH * hs
    let qkv = Buf(B * T * 3 * CL, &rng), dout = Buf(B * T * CL, &rng)
    let o1 = Buf(zeros: B * T * CL), o2 = Buf(zeros: B * T * CL)
    let a1 = Buf(zeros: B * NH * T * T), a2 = Buf(zeros: B * NH * T * T)
    attentionForward(o1.p, a1.p, qkv.p, B, T, NH, hs)
    attentionForward(o2.p, a2.p, qkv.p, B, T, NH, hs, pool: pool)
    for i in 0..<(B * T * CL) { XCTAssertEqual(o1[i], o2[i], accuracy: 1e-6) }
    let s1 = Buf(zeros: T * T), s2 = Buf(zeros: T * T)
    let dq1 = Buf(zeros: B * T * 3 * CL), dq2 = Buf(zeros: B * T * 3 * CL)
    attentionBackward(dq1.p, s1.p, dout.p, qkv.p, a1.p, B, T, NH, hs)
    attentionBackward(dq2.p, s2.p, dout.p, qkv.p, a1.p, B, T, NH, hs, pool: pool)
    for i in 0..<(B * T * 3 * CL) { XCTAssertEqual(dq1[i], dq2[i], accuracy: 1e-6) }
  }
}

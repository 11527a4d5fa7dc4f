import ArgumentParser
import Foundation
import Glibc
import MetricsEndpoint
import Telemetry
import TelemetryFixtures

/// `tptop-dev bench-scrape`: the time of one scrape of a synthetic job at several world sizes.
struct BenchScrape: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-scrape", abstract: "Time /metrics scrapes of synthetic jobs (BENCH lines).",
    discussion: """
      For each world size: a synthetic job with a 64-slot ring per rank, --history steps written, one first collection (it registers the series), then --rounds scrapes with one new step before each: a collection and a Prometheus text encoding; prints the medians of their wall time (together, each, and the thread's CPU time), the first collection and the bytes of one exposition. Under the counting preload of the tests (Tests/Fixtures/alloccount.c) it also prints the median heap allocations of one scrape and of its collection.
      """)

  @Option(help: "World sizes, comma-separated.") var ranks: String = "16,256,1024"
  @Option(help: "Timed scrapes per world size.") var rounds: Int = 20
  @Option(help: "Steps each rank writes before the first collection (over 64, its ring is overwritten).") var history: Int = 8

  func run(in space: SegmentSpace) throws {
    let sizes = ranks.split(separator: ",").compactMap { Int($0) }
    guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 1 && $0 <= 4096 }), rounds >= 1 && rounds <= 1000,
      history >= 0 && history <= 1_000_000
    else {
      throw failure("--ranks takes world sizes in 1...4096, --rounds 1...1000, --history 0...1000000", code: 2)
    }
    let allocations = AllocationCounter()
    for n in sizes {
      let name = "bench-scrape-\(getpid())-\(n)"
      let job = try reportingErrors { try SyntheticJob(job: name, in: space, worldSize: n, tp: n % 8 == 0 ? 8 : 1, slotCount: 64) }
      defer { try? job.remove() }
      job.advance(steps: history)
      let scraper = MetricsScraper(space: space, only: name)
      scraper.coalesceNs = 1_000_000_000  // a scrape right after refresh() encodes only
      var t0 = telemetryMonotonicNanos()
      scraper.refresh()
      let firstMs = Double(telemetryMonotonicNanos() - t0) / 1e6
      var total: [Double] = [], collect: [Double] = [], encode: [Double] = [], cpu: [Double] = []
      var allocs: [Int] = [], collectAllocs: [Int] = []
      var bytes = 0
      for _ in 0..<rounds {
        job.advance(steps: 1)
        let c0 = threadCPUNanos()
        let a0 = allocations?.count() ?? 0
        t0 = telemetryMonotonicNanos()
        scraper.forceRefresh()
        let t1 = telemetryMonotonicNanos()
        let a1 = allocations?.count() ?? 0
        bytes = scraper.scrapeBuffer(.prometheusText).readableBytes
        let t2 = telemetryMonotonicNanos()
        let a2 = allocations?.count() ?? 0
        allocs.append(a2 - a0)
        collectAllocs.append(a1 - a0)
        cpu.append(Double(threadCPUNanos() - c0) / 1e6)
        collect.append(Double(t1 - t0) / 1e6)
        encode.append(Double(t2 - t1) / 1e6)
        total.append(Double(t2 - t0) / 1e6)
      }
      func median(_ xs: [Double]) -> String { String(format: "%.2f", xs.sorted()[xs.count / 2]) }
      emit("BENCH scrape_\(n)ranks_ms \(median(total)) ms")
      emit("BENCH scrape_\(n)ranks_cpu_ms \(median(cpu)) ms")
      emit("BENCH scrape_\(n)ranks_collect_ms \(median(collect)) ms")
      emit("BENCH scrape_\(n)ranks_encode_ms \(median(encode)) ms")
      emit("BENCH scrape_\(n)ranks_first_ms \(String(format: "%.1f", firstMs)) ms")
      emit("BENCH scrape_\(n)ranks_bytes \(bytes) bytes")
      if allocations != nil {
        emit("BENCH scrape_\(n)ranks_allocs \(allocs.sorted()[rounds / 2]) allocations")
        emit("BENCH scrape_\(n)ranks_collect_allocs \(collectAllocs.sorted()[rounds / 2]) allocations")
      }
    }
  }

  /// CPU time of the calling thread, nanoseconds.
  func threadCPUNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
  }
}

/// The heap allocations of the calling thread, counted by the tests' preload
/// (Tests/Fixtures/alloccount.c); nil without it.
struct AllocationCounter {
  private let counter: @convention(c) () -> Int

  init?() {
    guard let count = dlsym(nil, "tptop_tracked_allocations"), let track = dlsym(nil, "tptop_track_thread") else {
      return nil
    }
    counter = unsafeBitCast(count, to: (@convention(c) () -> Int).self)
    unsafeBitCast(track, to: (@convention(c) () -> Void).self)()
  }

  /// Allocations of the tracked threads so far.
  func count() -> Int { counter() }
}

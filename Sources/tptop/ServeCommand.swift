import ArgumentParser
import Foundation
import MetricsEndpoint
import Telemetry

/// `tptop serve`: the namespace's jobs as a Prometheus/OpenMetrics endpoint (docs/METRICS.md).
struct ServeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Serve every job's metrics over HTTP for Prometheus (/metrics; /healthz).",
    discussion: """
      Read-only: no request can pause, stop or change a job. Listens on 127.0.0.1:9400 unless --listen names another address; a non-loopback address is used only when given explicitly, and said so at start. Exit status 2 when the address cannot be used (bad value, port in use, no permission). Metrics: docs/METRICS.md.
      """)

  @Option(help: "Address to listen on, HOST:PORT (IPv6 in brackets: [::1]:9400; port 0: any free port).")
  var listen: String = ListenAddress.default.description
  @Option(help: "Serve only this job (default: every job in the namespace).")
  var job: String?

  func validate() throws {
    if let j = job, !SegmentName.isValid(j) { throw ValidationError(TelemetryError.invalidJobName(j).description) }
  }

  func run() throws {
    let address: ListenAddress
    do {
      address = try ListenAddress.parse(listen)
    } catch let e as ListenAddress.Invalid {
      throw failure(e.description, code: 2)
    }
    let scraper = MetricsScraper(only: job)
    let server: MetricsHTTPServer
    do {
      server = try MetricsHTTPServer(address: address, scraper: scraper)
    } catch let e as MetricsHTTPServer.BindFailure {
      throw failure(e.description, code: 2)
    }
    let which = job.map { "job \($0)" } ?? "every job"
    let space = SegmentName.namespace.map { " of namespace \($0)" } ?? ""
    emit("serving \(which)\(space) at http://\(server.address)/metrics (read-only; /healthz for health)")
    if !server.address.isLoopback {
      emit("listening on \(server.address), not only loopback: every machine that can reach it can read these metrics")
    }
    try server.wait()
  }
}

/// `tptop bench-scrape`: the time of one scrape of a synthetic job at several world sizes.
struct BenchScrape: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-scrape", abstract: "Time /metrics scrapes of synthetic jobs (BENCH lines).",
    discussion: """
      For each world size: a synthetic job with a 64-slot ring per rank, 8 steps written, one first collection (it registers the series), then --rounds scrapes with one new step before each: a collection and a Prometheus text encoding; prints the medians of their wall time (together, each, and the thread's CPU time), the first collection and the bytes of one exposition.
      """,
    shouldDisplay: false)

  @Option(help: "World sizes, comma-separated.") var ranks: String = "16,256,1024"
  @Option(help: "Timed scrapes per world size.") var rounds: Int = 20

  func run() throws {
    let sizes = ranks.split(separator: ",").compactMap { Int($0) }
    guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 1 && $0 <= 4096 }), rounds >= 1 && rounds <= 1000 else {
      throw failure("--ranks takes world sizes in 1...4096, --rounds 1...1000", code: 2)
    }
    for n in sizes {
      let name = "bench-scrape-\(getpid())-\(n)"
      let job = try reportingErrors { try SyntheticJob(job: name, worldSize: n, tp: n % 8 == 0 ? 8 : 1, slotCount: 64) }
      defer { try? job.remove() }
      job.advance(steps: 8)
      let scraper = MetricsScraper(only: name)
      scraper.coalesceNs = 1_000_000_000  // a scrape right after refresh() encodes only
      var t0 = telemetryMonotonicNanos()
      scraper.refresh()
      let firstMs = Double(telemetryMonotonicNanos() - t0) / 1e6
      var total: [Double] = [], collect: [Double] = [], encode: [Double] = [], cpu: [Double] = []
      var bytes = 0
      for _ in 0..<rounds {
        job.advance(steps: 1)
        let c0 = threadCPUNanos()
        t0 = telemetryMonotonicNanos()
        scraper.forceRefresh()
        let t1 = telemetryMonotonicNanos()
        bytes = scraper.scrapeBuffer(.prometheusText).readableBytes
        let t2 = telemetryMonotonicNanos()
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
    }
  }

  /// CPU time of the calling thread, nanoseconds.
  func threadCPUNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
  }
}

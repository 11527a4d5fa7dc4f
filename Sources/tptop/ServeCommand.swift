import ArgumentParser
import Foundation
import MetricsEndpoint
import Telemetry

/// `tptop serve`: the namespace's jobs as a Prometheus/OpenMetrics endpoint (docs/METRICS.md).
struct ServeCommand: SegmentCommand {
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

  func run(in space: SegmentSpace) throws {
    let address: ListenAddress
    do {
      address = try ListenAddress.parse(listen)
    } catch let e as ListenAddress.Invalid {
      throw failure(e.description, code: 2)
    }
    let scraper = MetricsScraper(space: space, only: job)
    let server: MetricsHTTPServer
    do {
      server = try MetricsHTTPServer(address: address, scraper: scraper)
    } catch let e as MetricsHTTPServer.BindFailure {
      throw failure(e.description, code: 2)
    }
    let which = job.map { "job \($0)" } ?? "every job"
    let of = space.namespace.map { " of namespace \($0)" } ?? ""
    emit("serving \(which)\(of) at http://\(server.address)/metrics (read-only; /healthz for health)")
    if !server.address.isLoopback {
      emit("listening on \(server.address), not only loopback: every machine that can reach it can read these metrics")
    }
    try server.wait()
  }
}

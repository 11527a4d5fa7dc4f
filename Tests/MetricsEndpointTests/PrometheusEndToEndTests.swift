import Foundation
import Glibc
import Telemetry
import TestSupport
import XCTest

/// Debian's Prometheus server, started on loopback, scrapes `tptop serve` every second while a
/// real 2-rank training job runs (held paused mid-run until it has been scraped there); the
/// values its HTTP API returns for `tptop_step` and `tptop_loss` must be the job's own records at
/// that step (`tptop export`).
final class PrometheusEndToEndTests: XCTestCase {
  private var scratch: URL!

  override func setUpWithError() throws {
    scratch = FileManager.default.temporaryDirectory.appendingPathComponent("prom-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
  }

  override func tearDown() { try? FileManager.default.removeItem(at: scratch) }

  /// A TCP port free on loopback now.
  private func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
  }

  /// `GET /api/v1/query?query=…` on the Prometheus server: the vector's (labels, value) pairs.
  private func query(_ port: Int, _ promql: String, at time: Double? = nil) throws -> [([String: String], Double)] {
    var q = "query=" + promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
    if let time { q += "&time=\(String(format: "%.3f", time))" }
    let reply = try http(port, "GET", "/api/v1/query?" + q, timeout: 10)
    guard reply.status == 200, let json = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any],
      let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]]
    else { throw SampleError("query \(promql): HTTP \(reply.status) \(reply.body.prefix(300))") }
    return result.compactMap { r in
      guard let metric = r["metric"] as? [String: String], let value = r["value"] as? [Any], value.count == 2,
        let text = value[1] as? String, let v = Double(text)
      else { return nil }
      return (metric, v)
    }
  }

  func testPrometheusScrapesATrainingJobAndItsValuesAreTheJobsRecords() throws {
    guard let prometheus = which("prometheus") else { throw MissingTool.error("prometheus (make test-deps installs Debian's prometheus)") }
    guard let mpirun = which("mpirun") else { throw MissingTool.error("mpirun (make test installs openmpi-bin)") }
    let tptrain = try BuildProducts.path("tptrain")
    let tptop = try BuildProducts.path("tptop")
    let job = uniqueJob("e2e")

    let server = try ServeProcess(["--job", job])
    defer { server.stop() }
    let promPort = freePort()
    let config = scratch.appendingPathComponent("prometheus.yml")
    try """
      global:
        scrape_interval: 1s
        scrape_timeout: 1s
      scrape_configs:
        - job_name: tptop
          honor_labels: true
          static_configs:
            - targets: ["127.0.0.1:\(server.port)"]

      """.write(to: config, atomically: true, encoding: .utf8)
    let prom = Process()
    prom.executableURL = URL(fileURLWithPath: prometheus)
    prom.arguments = [
      "--config.file=\(config.path)", "--storage.tsdb.path=\(scratch.appendingPathComponent("data").path)",
      "--web.listen-address=127.0.0.1:\(promPort)", "--log.level=warn",
    ]
    prom.standardOutput = FileHandle.nullDevice
    prom.standardError = FileHandle.nullDevice
    try prom.run()
    defer {
      prom.terminate()
      prom.waitUntilExit()
    }
    XCTAssertTrue(waitUntil(30) { (try? http(promPort, "GET", "/-/ready", timeout: 2).status) == 200 }, "Prometheus did not become ready")

    // the training job: 2 ranks, TP=2, long enough for several scrapes
    let train = Process()
    train.executableURL = URL(fileURLWithPath: mpirun)
    train.arguments = [
      "--allow-run-as-root", "--oversubscribe", "-np", "2", tptrain, "--model", "tiny", "--tp", "2", "--batch", "2",
      "--seq", "16", "--steps", "1500", "--job", job, "--quiet", "--threads", "1",
      "--checkpoint-dir", scratch.appendingPathComponent("ck").path,
    ]
    train.standardOutput = FileHandle.nullDevice
    train.standardError = FileHandle.nullDevice
    let trainStart = Date().timeIntervalSince1970
    try train.run()
    defer {
      if train.isRunning { train.terminate() }
      try? SegmentWriter.remove(job: job, in: .default)
    }
    // Prometheus holds samples of the job while it trains. However fast this machine runs the
    // tiny model, the test holds the job paused mid-run (through its control page, as `tptop
    // pause` does) until Prometheus has scraped it there, then lets it finish.
    var reader: JobReader?
    XCTAssertTrue(waitUntil(60) {
      if reader == nil { reader = try? JobReader(job: job, in: .default) }
      return (reader?.ranks().map(\.lastStep).min() ?? 0) >= 20
    }, "the job did not reach step 20")
    let control = try XCTUnwrap(reader)
    try control.request(.pause)
    var seenWhileRunning: Set<Double> = []
    XCTAssertTrue(waitUntil(60) {
      let paused = (try? query(promPort, "tptop_job_state{job=\"\(job)\",state=\"paused\"}").first?.1) == 1
      for (_, v) in (try? query(promPort, "tptop_step{job=\"\(job)\",rank=\"0\"}")) ?? [] { seenWhileRunning.insert(v) }
      return paused
    }, "Prometheus never saw the job paused")
    try control.request(.run)
    let deadline = Date().addingTimeInterval(240)
    while train.isRunning && Date() < deadline {
      for (_, v) in (try? query(promPort, "tptop_step{job=\"\(job)\",rank=\"0\"}")) ?? [] { seenWhileRunning.insert(v) }
      usleep(200_000)
    }
    XCTAssertFalse(train.isRunning, "the training job did not finish in time")
    train.waitUntilExit()
    XCTAssertEqual(train.terminationStatus, 0)
    XCTAssertTrue(seenWhileRunning.contains { $0 > 0 && $0 < 1500 }, "Prometheus stored no tptop_step while the job ran: \(seenWhileRunning)")
    // one more scrape of the finished job
    sleep(2)

    // the job's own records
    let export = try runTool(tptop, ["export", job, "--format", "jsonl"])
    XCTAssertEqual(export.status, 0, export.err)
    var lossAt: [String: Float] = [:]  // "rank/step" → loss
    for line in export.out.split(separator: "\n") {
      guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["type"] as? String == "step",
        let rank = o["rank"] as? Int, let step = o["step"] as? Int, let loss = o["loss"] as? Double
      else { continue }
      lossAt["\(rank)/\(step)"] = Float(loss)
    }
    XCTAssertEqual(lossAt.count, 2 * 1500)

    // every scrape Prometheus kept: step and loss of one scrape, against the record of that step
    let now = Date().timeIntervalSince1970
    var compared = 0
    var steps: Set<Int> = []
    for t in stride(from: trainStart, through: now, by: 0.5) {
      let stepV = try query(promPort, "tptop_step{job=\"\(job)\"}", at: t)
      let lossV = try query(promPort, "tptop_loss{job=\"\(job)\"}", at: t)
      for (labels, step) in stepV where step > 0 {
        let rank = labels["rank"] ?? "?"
        XCTAssertEqual(labels["tp_rank"], rank)
        XCTAssertEqual(labels["dp_rank"], "0")
        guard let loss = lossV.first(where: { $0.0["rank"] == rank })?.1 else { continue }
        let expected = try XCTUnwrap(lossAt["\(rank)/\(Int(step))"], "no exported record of rank \(rank) step \(Int(step))")
        XCTAssertEqual(loss, Double(expected), "rank \(rank) step \(Int(step))")
        compared += 1
        steps.insert(Int(step))
      }
    }
    print("compared \(compared) (step, loss) samples of Prometheus with the job's records, at steps \(steps.sorted())")
    XCTAssertGreaterThanOrEqual(compared, 4)
    XCTAssertGreaterThanOrEqual(steps.count, 2, "Prometheus saw only one step: \(steps)")
    XCTAssertTrue(steps.contains(1500))
    // the finished job's state and its histogram
    XCTAssertEqual(try query(promPort, "tptop_job_state{job=\"\(job)\",state=\"finished\"}").first?.1, 1)
    let count = try query(promPort, "tptop_allreduce_latency_seconds_count{job=\"\(job)\",rank=\"0\"}").first?.1 ?? 0
    XCTAssertGreaterThan(count, 0)
  }
}

/// Polls `cond` every 100 ms for up to `timeout` seconds.
func waitUntil(_ timeout: Double, _ cond: () -> Bool) -> Bool {
  let end = Date().addingTimeInterval(timeout)
  while Date() < end {
    if cond() { return true }
    usleep(100_000)
  }
  return cond()
}

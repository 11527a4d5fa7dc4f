import Foundation
import Glibc
import Telemetry
import TestSupport
import XCTest
import TelemetryFixtures

/// `tptop serve` as a process on loopback: routes, formats, `promtool check metrics`, clients
/// that misbehave, and addresses it cannot use.
final class ServerTests: XCTestCase {
  private let namespace = "promsrv\(getpid())"
  private var space: SegmentSpace { SegmentSpace(namespace: namespace) }
  private var environment: [String: String] { ProcessInfo.processInfo.environment }

  /// A synthetic job in this test's namespace, and a server of that namespace.
  private func serveSyntheticJob(ranks: Int = 4) throws -> (SyntheticJob, ServeProcess) {
    let job = try SyntheticJob(job: uniqueJob("srv"), in: space, worldSize: ranks, tp: 2)
    job.advance(steps: 3)
    return (job, try ServeProcess(["--namespace", namespace]))
  }

  func testRoutesMethodsAndFormats() throws {
    let (job, server) = try serveSyntheticJob()
    defer { try? job.remove() }
    let health = try http(server.port, "GET", "/healthz")
    XCTAssertEqual(health.status, 200)
    XCTAssertEqual(health.body, "ok\n")
    XCTAssertEqual(try http(server.port, "GET", "/").status, 404)
    XCTAssertEqual(try http(server.port, "GET", "/pause").status, 404)
    XCTAssertEqual(try http(server.port, "POST", "/nothing").status, 404)
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
      let r = try http(server.port, method, "/metrics")
      XCTAssertEqual(r.status, 405, method)
      XCTAssertEqual(r.headers["allow"], "GET, HEAD")
    }
    // the job runs on after every request above: none reached its control page
    XCTAssertEqual(try JobReader(job: job.description.name, in: space).control().desired, .run)

    let plain = try http(server.port, "GET", "/metrics")
    XCTAssertEqual(plain.status, 200)
    XCTAssertEqual(plain.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
    XCTAssertEqual(try parseSamples(plain.body).value("tptop_step", ["job": job.description.name, "rank": "3"]), 3)
    XCTAssertFalse(plain.body.contains("# EOF"))
    let om = try http(server.port, "GET", "/metrics", headers: ["Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"])
    XCTAssertEqual(om.headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8")
    XCTAssertTrue(om.body.hasSuffix("# EOF\n"))
    let head = try http(server.port, "HEAD", "/metrics")
    XCTAssertEqual(head.status, 200)
    XCTAssertEqual(head.body, "")
  }

  func testPromtoolAcceptsTheOutputAndOpenMetricsCarriesTheSameSamples() throws {
    guard let promtool = which("promtool") else { throw MissingTool.error("promtool (make test-deps installs Debian's prometheus)") }
    let (job, server) = try serveSyntheticJob()
    defer { try? job.remove() }
    // a non-finite loss, as a diverged job publishes it
    var r = SyntheticJob.plausibleRecord(step: 4, rank: 0, model: job.description.model)
    r.loss = .nan
    job.rankWriters[0].writeStep(r)
    let text = try http(server.port, "GET", "/metrics").body
    XCTAssertTrue(text.contains("tptop_loss{"))
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("prom-check-\(getpid()).txt")
    try text.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    let check = try runTool("/bin/sh", ["-c", "\(promtool) check metrics < \(file.path)"])
    XCTAssertEqual(check.status, 0, check.out + check.err)
    XCTAssertEqual(check.out + check.err, "")
    // OpenMetrics (what Prometheus asks for; the end-to-end test has it ingest that): the same
    // sample lines, only the counter families' names and the end marker differ
    let om = try http(server.port, "GET", "/metrics", headers: ["Accept": "application/openmetrics-text;version=1.0.0"]).body
    // (series only: the heartbeat ages of two scrapes differ)
    let samples = { (t: String) in Set(t.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0[..<$0.lastIndex(of: " ")!] }) }
    XCTAssertEqual(samples(om), samples(text))
    XCTAssertTrue(om.contains("# TYPE tptop_records_lost counter\n"))
    XCTAssertTrue(text.contains("# TYPE tptop_records_lost_total counter\n"))
  }

  func testManyConcurrentAndStalledClientsDoNotBlockTheServer() throws {
    let (job, server) = try serveSyntheticJob(ranks: 16)
    defer { try? job.remove() }
    // a client that sends half a request and waits; one that asks and never reads
    let slow = try XCTUnwrap(connectLoopback(server.port))
    defer { close(slow) }
    XCTAssertTrue(sendAll(slow, "GET /metr"))
    var nonReaders: [Int32] = []
    defer { nonReaders.forEach { close($0) } }
    for _ in 0..<4 {
      let fd = try XCTUnwrap(connectLoopback(server.port))
      var small: Int32 = 1024
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
      XCTAssertTrue(sendAll(fd, String(repeating: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", count: 20)))
      nonReaders.append(fd)
    }
    // 100 clients at once, each one scrape
    let group = DispatchGroup()
    let results = LockedResults()
    let port = server.port
    let started = Date()
    for _ in 0..<100 {
      DispatchQueue.global().async(group: group) {
        let r = try? http(port, "GET", "/metrics", timeout: 20)
        results.add(r?.status == 200 && (r?.body.contains("tptop_step{") ?? false))
      }
    }
    XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
    XCTAssertEqual(results.successes, 100)
    let storm = Date().timeIntervalSince(started)
    // meanwhile and after, a plain request is answered at once
    let t0 = Date()
    XCTAssertEqual(try http(server.port, "GET", "/healthz", timeout: 5).status, 200)
    XCTAssertLessThan(Date().timeIntervalSince(t0), 2)
    XCTAssertLessThan(storm, 30)
    XCTAssertTrue(server.process.isRunning)
    // the stalled clients hang up with responses still unsent: the server stays up
    nonReaders.forEach { close($0) }
    nonReaders = []
    usleep(300_000)
    XCTAssertEqual(try http(server.port, "GET", "/healthz", timeout: 5).status, 200)
    XCTAssertTrue(server.process.isRunning)
  }

  func testAddressesItCannotUseAreOneLineAndExit2() throws {
    let tptop = try BuildProducts.path("tptop")
    for bad in ["nonsense", "127.0.0.1:99999", "example.com:80", ":9400"] {
      let r = try runTool(tptop, ["serve", "--listen", bad])
      XCTAssertEqual(r.status, 2, bad)
      XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
      XCTAssertTrue(r.err.contains("--listen"), r.err)
    }
    // a port in use: the first server holds it
    let first = try ServeProcess(["--namespace", namespace])
    defer { first.stop() }
    let inUse = try runTool(tptop, ["serve", "--listen", "127.0.0.1:\(first.port)"])
    XCTAssertEqual(inUse.status, 2)
    XCTAssertEqual(inUse.err.split(separator: "\n").count, 1, inUse.err)
    XCTAssertTrue(inUse.err.contains("in use"), inUse.err)
    // an address of no interface here
    let foreign = try runTool(tptop, ["serve", "--listen", "192.0.2.1:9400"])
    XCTAssertEqual(foreign.status, 2)
    XCTAssertEqual(foreign.err.split(separator: "\n").count, 1, foreign.err)
  }

  func testNoPermissionToBindIsOneLineAndExit2() throws {
    guard getuid() == 0, let setpriv = which("setpriv") else {
      throw MissingTool.error("root and setpriv (to bind a privileged port as uid 65534)")
    }
    let tptop = try BuildProducts.path("tptop")
    let r = try runTool(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", tptop, "serve", "--listen", "127.0.0.1:81"])
    XCTAssertEqual(r.status, 2, r.err)
    XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
    XCTAssertTrue(r.err.contains("permission"), r.err)
  }
}

final class LockedResults: @unchecked Sendable {
  private let lock = NSLock()
  private var ok = 0
  func add(_ success: Bool) {
    lock.lock()
    if success { ok += 1 }
    lock.unlock()
  }
  var successes: Int {
    lock.lock()
    defer { lock.unlock() }
    return ok
  }
}

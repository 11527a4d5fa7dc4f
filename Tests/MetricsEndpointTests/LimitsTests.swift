import Foundation
import Glibc
import Telemetry
import XCTest

@testable import MetricsEndpoint

/// The server's bounds on clients, in process with small limits: a connection that neither
/// sends nor reads is closed after the idle timeout, and connections beyond the cap are closed
/// at once while those within it are served.
final class LimitsTests: XCTestCase {
  private func server(maxConnections: Int = 256, idle: Int64 = 10) throws -> MetricsHTTPServer {
    var limits = MetricsHTTPServer.Limits()
    limits.maxConnections = maxConnections
    limits.idleTimeout = idle
    // a namespace of no jobs: only the server's own counter
    let scraper = MetricsScraper(space: SegmentSpace(namespace: "promlim\(getpid())"))
    return try MetricsHTTPServer(address: ListenAddress(host: "127.0.0.1", port: 0), scraper: scraper, limits: limits)
  }

  /// Whether the server closed `fd` (recv returns 0) within `timeout` seconds.
  private func closedByServer(_ fd: Int32, within timeout: Double) -> Bool {
    var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var byte: UInt8 = 0
    return recv(fd, &byte, 1, 0) == 0
  }

  func testAClientThatSendsHalfARequestIsClosedAfterTheIdleTimeout() throws {
    let s = try server(idle: 1)
    defer { s.shutdown() }
    let fd = try XCTUnwrap(connectLoopback(s.address.port))
    defer { close(fd) }
    XCTAssertTrue(sendAll(fd, "GET /metr"))
    let t0 = Date()
    XCTAssertTrue(closedByServer(fd, within: 5))
    let waited = Date().timeIntervalSince(t0)
    XCTAssertGreaterThan(waited, 0.5)
    XCTAssertLessThan(waited, 4)
    XCTAssertEqual(try http(s.address.port, "GET", "/healthz").status, 200)
  }

  func testConnectionsBeyondTheCapAreClosedAndTheOthersServed() throws {
    let s = try server(maxConnections: 4)
    defer { s.shutdown() }
    var held: [Int32] = []
    defer { held.forEach { close($0) } }
    for _ in 0..<4 { held.append(try XCTUnwrap(connectLoopback(s.address.port))) }
    usleep(200_000)  // accepted
    let extra = try XCTUnwrap(connectLoopback(s.address.port))
    defer { close(extra) }
    XCTAssertTrue(closedByServer(extra, within: 5))
    // one held connection is still served
    XCTAssertTrue(sendAll(held[0], "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    var buf = [UInt8](repeating: 0, count: 64)
    let n = recv(held[0], &buf, buf.count, 0)
    XCTAssertTrue(String(decoding: buf[0..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 200"))
    // and once the others hang up, new clients get in again
    held.forEach { close($0) }
    held = []
    XCTAssertTrue(waitUntil(5) { (try? http(s.address.port, "GET", "/healthz", timeout: 2).status) == 200 })
  }
}

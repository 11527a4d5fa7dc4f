import XCTest

@testable import MetricsEndpoint

/// `--listen` values, routes and `Accept` negotiation: pure functions, no sockets.
final class ParsingTests: XCTestCase {
  func testListenAddressesParseAndSayWhetherTheyAreLoopback() throws {
    XCTAssertEqual(try ListenAddress.parse("127.0.0.1:9400"), ListenAddress(host: "127.0.0.1", port: 9400))
    XCTAssertEqual(try ListenAddress.parse("[::1]:0"), ListenAddress(host: "::1", port: 0))
    XCTAssertEqual(try ListenAddress.parse("0.0.0.0:9401").port, 9401)
    XCTAssertEqual(try ListenAddress.parse("localhost:9400").host, "localhost")
    XCTAssertTrue(try ListenAddress.parse("127.0.0.2:1").isLoopback)
    XCTAssertTrue(try ListenAddress.parse("[::1]:1").isLoopback)
    XCTAssertFalse(try ListenAddress.parse("0.0.0.0:1").isLoopback)
    XCTAssertFalse(try ListenAddress.parse("[::]:1").isLoopback)
    XCTAssertEqual(ListenAddress.default.description, "127.0.0.1:9400")
    XCTAssertEqual(ListenAddress(host: "::1", port: 9).description, "[::1]:9")
  }

  func testBadListenValuesAreOneLineNamingTheFix() {
    for bad in ["", "9400", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:x",
                "::1:9400", "[::1]9400", "example.com:9400", "1.2.3:80", "[::1:80"] {
      XCTAssertThrowsError(try ListenAddress.parse(bad), bad) { e in
        let text = "\(e)"
        XCTAssertFalse(text.contains("\n"), text)
        XCTAssertTrue(text.contains("HOST:PORT"), text)
        XCTAssertTrue(text.contains("'\(bad)'"), text)
      }
    }
  }

  func testRoutes() {
    XCTAssertEqual(Route.resolve(method: "GET", uri: "/metrics"), .metrics)
    XCTAssertEqual(Route.resolve(method: "HEAD", uri: "/metrics?x=1"), .metrics)
    XCTAssertEqual(Route.resolve(method: "GET", uri: "/healthz"), .health)
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
      XCTAssertEqual(Route.resolve(method: m, uri: "/metrics"), .methodNotAllowed, m)
    }
    XCTAssertEqual(Route.resolve(method: "GET", uri: "/"), .notFound)
    XCTAssertEqual(Route.resolve(method: "POST", uri: "/pause"), .notFound)
    XCTAssertEqual(Route.resolve(method: "GET", uri: "/metrics/"), .notFound)
  }

  func testNegotiation() {
    // what Prometheus 2.42 sends
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    XCTAssertEqual(ExpositionFormat.negotiate(accept: prometheus), .openMetrics)
    XCTAssertEqual(ExpositionFormat.negotiate(accept: nil), .prometheusText)
    XCTAssertEqual(ExpositionFormat.negotiate(accept: "*/*"), .prometheusText)
    XCTAssertEqual(ExpositionFormat.negotiate(accept: "text/plain"), .prometheusText)
    XCTAssertEqual(ExpositionFormat.negotiate(accept: "text/plain;q=1, application/openmetrics-text;q=0.5"), .prometheusText)
    XCTAssertEqual(ExpositionFormat.negotiate(accept: "application/openmetrics-text; version=1.0.0"), .openMetrics)
    XCTAssertEqual(ExpositionFormat.negotiate(accept: "application/openmetrics-text;q=0"), .prometheusText)
  }

  func testOpenMetricsNamesCounterFamiliesWithoutTotalAndEndsWithEOF() {
    let text = Array("""
      # HELP a_total Things.
      # TYPE a_total counter
      a_total{x="1"} 3
      # HELP b_total A gauge named like a counter.
      # TYPE b_total gauge
      b_total 1.0

      """.utf8)
    let om = String(decoding: ExpositionFormat.openMetrics.encode(text), as: UTF8.self)
    XCTAssertEqual(om, """
      # HELP a Things.
      # TYPE a counter
      a_total{x="1"} 3
      # HELP b_total A gauge named like a counter.
      # TYPE b_total gauge
      b_total 1.0
      # EOF

      """)
    XCTAssertEqual(ExpositionFormat.prometheusText.encode(text), text)
  }
}

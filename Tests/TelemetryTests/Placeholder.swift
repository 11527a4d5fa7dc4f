import XCTest

final class TelemetryTestsPlaceholder: XCTestCase {}

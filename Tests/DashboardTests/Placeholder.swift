import XCTest

final class DashboardTestsPlaceholder: XCTestCase {}

import XCTest

final class TPEngineTestsPlaceholder: XCTestCase {}

import XCTest

/// The element pairs of two series that must have the same length: a shorter log (a run that
/// stopped early, a truncated file) fails the test here instead of comparing fewer elements.
func paired<A, B>(_ a: [A], _ b: [B], _ what: @autoclosure () -> String,
                  file: StaticString = #filePath, line: UInt = #line) -> Zip2Sequence<[A], [B]> {
  XCTAssertEqual(a.count, b.count, "\(what()): lengths differ", file: file, line: line)
  return zip(a, b)
}

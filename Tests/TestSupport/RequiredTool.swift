import Foundation
import XCTest

/// A tool or build product that a test needs is missing.
///
/// On a developer's machine the test is skipped with the reason. Under `CI=true` the README's
/// test command has installed every tool the suite needs, so a missing one is a broken set-up:
/// the test fails with the same reason instead of passing silently.
public struct MissingTool: Error, CustomStringConvertible {
  public var description: String

  /// The error to throw from a test that cannot run without `what`.
  public static func error(_ what: String) -> Error {
    if isCI { return MissingTool(description: "required under CI=true: \(what)") }
    return XCTSkip(what)
  }

  /// Whether the suite runs under CI (`CI=true`, as `.ci/run` sets it).
  public static var isCI: Bool {
    let value = ProcessInfo.processInfo.environment["CI"]?.lowercased() ?? ""
    return value == "true" || value == "1"
  }

  /// Throws `error(what)` unless `condition` holds.
  public static func require(_ condition: Bool, _ what: @autoclosure () -> String) throws {
    if !condition { throw error(what()) }
  }
}

import Foundation
import TestSupport
import XCTest

/// What `tptop` prints for a mistyped command line.
final class CommandLineTests: XCTestCase {
  func run(_ args: [String]) throws -> (status: Int32, stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try BuildProducts.path("tptop"))
    p.arguments = args
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
  }

  func testUnknownCommandPrintsTheTopLevelUsage() throws {
    let r = try run(["bogus"])
    XCTAssertEqual(r.status, 64)
    XCTAssertTrue(r.stderr.hasPrefix("Error: unknown command 'bogus'\n"), r.stderr)
    XCTAssertTrue(r.stderr.contains("Usage: tptop <subcommand>"), r.stderr)
    XCTAssertFalse(r.stderr.contains("tptop home"), "not the default subcommand's usage:\n\(r.stderr)")
  }

  /// `--namespace` goes with every command, before or after it; a bad name is one line.
  func testNamespaceIsTakenAnywhereAndChecked() throws {
    for args in [["--namespace", "node-nobody-\(getpid())", "ls"], ["ls", "--namespace=node-nobody-\(getpid())"]] {
      let r = try run(args)
      XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
    }
    let bad = try run(["--namespace", "a/b", "ls"])
    XCTAssertEqual(bad.status, 64)
    XCTAssertEqual(bad.stderr, "tptop: invalid --namespace 'a/b': use 1–32 characters from A-Z a-z 0-9 _ -\n")
    let missing = try run(["ls", "--namespace"])
    XCTAssertEqual(missing.status, 64)
    XCTAssertEqual(missing.stderr, "tptop: --namespace needs a name, e.g. --namespace node1\n")
  }

  func testKnownCommandKeepsItsOwnUsage() throws {
    let r = try run(["ls", "--bogus"])
    XCTAssertEqual(r.status, 64)
    XCTAssertTrue(r.stderr.contains("Usage: tptop ls"), r.stderr)
  }

  /// `tptop --version` and `tptrain --version` print the version on stdout, nothing else.
  func testVersion() throws {
    for tool in ["tptop", "tptrain"] {
      let p = Process()
      p.executableURL = URL(fileURLWithPath: try BuildProducts.path(tool))
      p.arguments = ["--version"]
      let out = Pipe(), err = Pipe()
      (p.standardOutput, p.standardError, p.standardInput) = (out, err, FileHandle.nullDevice)
      try p.run()
      let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      p.waitUntilExit()
      XCTAssertEqual(p.terminationStatus, 0, "\(tool): \(errors)")
      XCTAssertNotNil(text.range(of: #"^\#(tool) \d+\.\d+\.\d+\n$"#, options: .regularExpression), "\(tool): \(text)\(errors)")
      XCTAssertFalse(errors.contains("home"), errors)
    }
  }
}

import Foundation
import Glibc
import XCTest

@testable import Telemetry

/// `tptop export --output`: regular files are replaced atomically; links and devices are written
/// through, never replaced by a regular file.
final class OutputFileTests: XCTestCase {
  var dir = ""

  override func setUpWithError() throws {
    dir = NSTemporaryDirectory() + "tptop-output-\(getpid())-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  }

  override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

  func fileType(_ path: String) -> mode_t {
    var st = stat()
    XCTAssertEqual(lstat(path, &st), 0, path)
    return st.st_mode & S_IFMT
  }

  func inode(_ path: String) -> ino_t {
    var st = stat()
    _ = stat(path, &st)
    return st.st_ino
  }

  func testRegularFileIsReplacedWhole() throws {
    let path = dir + "/run.csv"
    try "old contents that are longer than the new ones\n".write(toFile: path, atomically: false, encoding: .utf8)
    let before = inode(path)
    try OutputFile.write(Array("a,b\n".utf8), to: path)
    XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "a,b\n")
    XCTAssertNotEqual(inode(path), before, "replaced by rename, not rewritten in place")
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["run.csv"], "no temporary file left")
  }

  func testNewFileInTheCurrentDirectoryForm() throws {
    let cwd = FileManager.default.currentDirectoryPath
    XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(dir))
    defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
    try OutputFile.write(Array("x\n".utf8), to: "plain.jsonl")
    XCTAssertEqual(try String(contentsOfFile: dir + "/plain.jsonl", encoding: .utf8), "x\n")
  }

  func testSymlinkIsWrittenThrough() throws {
    let target = dir + "/target.csv", link = dir + "/link.csv"
    try "previous\n".write(toFile: target, atomically: false, encoding: .utf8)
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
    try OutputFile.write(Array("new\n".utf8), to: link)
    XCTAssertEqual(fileType(link), S_IFLNK, "the link is still a link")
    XCTAssertEqual(try String(contentsOfFile: target, encoding: .utf8), "new\n")
  }

  func testDanglingSymlinkGetsTheFileItNames() throws {
    let link = dir + "/link.csv"
    // relative to the link's directory, as the kernel resolves it
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "real.csv")
    try OutputFile.write(Array("made\n".utf8), to: link)
    XCTAssertEqual(fileType(link), S_IFLNK, "the link is still a link")
    XCTAssertEqual(try String(contentsOfFile: dir + "/real.csv", encoding: .utf8), "made\n")
  }

  func testDeviceIsWrittenThroughAndStaysADevice() throws {
    try OutputFile.write(Array("discarded\n".utf8), to: "/dev/null")
    XCTAssertEqual(fileType("/dev/null"), S_IFCHR)
  }

  func testFullDeviceFailsWithOneLineAndStaysADevice() throws {
    guard FileManager.default.fileExists(atPath: "/dev/full") else { throw XCTSkip("no /dev/full on this system") }
    XCTAssertThrowsError(try OutputFile.write(Array(repeating: 65, count: 1 << 16), to: "/dev/full")) { error in
      let text = String(describing: error)
      XCTAssertTrue(text.contains("/dev/full") && text.contains("space"), text)
      XCTAssertFalse(text.contains("\n"), text)
    }
    XCTAssertEqual(fileType("/dev/full"), S_IFCHR, "/dev/full is still a device")
  }

  func testDirectoryAndMissingDirectoryAreRefused() throws {
    XCTAssertThrowsError(try OutputFile.write([65], to: dir)) {
      XCTAssertTrue(String(describing: $0).contains("is a directory"), String(describing: $0))
    }
    XCTAssertThrowsError(try OutputFile.write([65], to: dir + "/missing/run.csv")) {
      XCTAssertTrue(String(describing: $0).contains("directory exists"), String(describing: $0))
    }
  }
}

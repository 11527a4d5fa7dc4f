import Foundation
import Glibc
import XCTest

/// Where tptrain writes `--save` and `--log`: a link keeps naming its file, a device stays a
/// device (the devices here are this test's own nodes, made with mknod: the machine's /dev is
/// never at stake), a full device or a directory fails with one line and a non-zero exit.
final class OutputTargetTests: XCTestCase {
  var dir: URL!
  let tiny = ["--model", "tiny", "--batch", "2", "--seq", "16", "--steps", "3", "--quiet", "--no-telemetry"]

  override func setUpWithError() throws { dir = try Harness.tempDir(self) }

  func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

  func fileType(_ path: String) -> mode_t {
    var st = stat()
    XCTAssertEqual(lstat(path, &st), 0, path)
    return st.st_mode & S_IFMT
  }

  /// A character device node `name` in the test's directory: Linux's null (1, 3) or full (1, 7).
  func device(_ name: String, minor: UInt64) throws -> String {
    let p = path(name)
    // makedev(1, minor) for minors below 256
    guard mknod(p, S_IFCHR | 0o666, dev_t((1 << 8) | minor)) == 0 else {
      if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("mknod \(p): \(String(cString: strerror(errno)))") }
      throw XCTSkip("mknod needs root (CAP_MKNOD): \(String(cString: strerror(errno)))")
    }
    return p
  }

  func testSaveThroughALinkAndToADevice() throws {
    // a link (relative, dangling) keeps naming the file, which the run creates
    let link = path("model-link.bin")
    XCTAssertEqual(symlink("real-model.bin", link), 0)
    _ = try Harness.train(np: 2, tiny + ["--tp", "2", "--save", link])
    XCTAssertEqual(fileType(link), S_IFLNK, "the link is still a link")
    let saved = try Data(contentsOf: URL(fileURLWithPath: path("real-model.bin")))
    let plain = path("plain.bin")
    _ = try Harness.train(np: 2, tiny + ["--tp", "2", "--save", plain])
    XCTAssertEqual(saved, try Data(contentsOf: URL(fileURLWithPath: plain)), "the same model as a plain --save")
    XCTAssertFalse(FileManager.default.fileExists(atPath: path("real-model.bin.tmp")))

    // a null device is written through and stays a device
    let null = try device("null", minor: 3)
    _ = try Harness.train(np: 2, tiny + ["--tp", "2", "--save", null])
    XCTAssertEqual(fileType(null), S_IFCHR, "--save to a device left a device")

    // a full device: one line, a non-zero exit, still a device
    let full = try device("full", minor: 7)
    let r = try Harness.mpirun(np: 2, tiny + ["--tp", "2", "--save", full])
    XCTAssertNotEqual(r.status, 0)
    let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("tptrain: error") }
    XCTAssertEqual(errors.count, 1, r.stderr)
    XCTAssertTrue(errors.first?.contains("No space left on device") ?? false, r.stderr)
    XCTAssertEqual(fileType(full), S_IFCHR, "--save to a full device left a device")
  }

  func testSaveToADirectoryIsRefusedBeforeTraining() throws {
    let target = path("models")
    try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
    let r = try Harness.mpirun(np: 2, tiny + ["--tp", "2", "--save", target, "--log", path("run.jsonl")])
    XCTAssertNotEqual(r.status, 0)
    XCTAssertEqual(r.stderr.components(separatedBy: "tptrain: error").count - 1, 1, r.stderr)
    XCTAssertTrue(r.stderr.contains("--save \(target) is a directory: name a file"), r.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: path("run.jsonl")), "refused before any step")
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: target), [], "nothing written")
  }

  func testLogToAFullDeviceFailsTheRun() throws {
    let full = try device("full", minor: 7)
    let save = path("m.bin")
    let r = try Harness.mpirun(np: 1, tiny + ["--log", full, "--save", save])
    XCTAssertNotEqual(r.status, 0, "a log that lost its lines is not a success")
    let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("tptrain: error") }
    XCTAssertEqual(errors.count, 1, r.stderr)
    XCTAssertTrue(errors.first?.contains("cannot write the log \(full): No space left on device from step 1 on") ?? false, r.stderr)
    XCTAssertTrue(FileManager.default.fileExists(atPath: save), "training and --save still finished")
    XCTAssertEqual(fileType(full), S_IFCHR)
  }
}

import Foundation
import JobControl
import Telemetry
import TestSupport
import XCTest
import TelemetryFixtures

/// `tptop launch --job NAME` while a segment NAME exists: refused before anything starts, with
/// the fix in the message, and the existing job's log left alone.
final class LaunchRefusalTests: XCTestCase {
  func testExistingJobNameIsRefusedAndItsLogKept() throws {
    let job = "launch-dup-\(getpid())"
    let logDir = NSTemporaryDirectory() + job
    try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: logDir) }
    setenv("TPTOP_LOG_DIR", logDir, 1)
    defer { unsetenv("TPTOP_LOG_DIR") }
    try Data("the running job's output\n".utf8).write(to: URL(fileURLWithPath: LogFiles.path(job: job)))

    let synthetic = try SyntheticJob(job: job, worldSize: 2, tp: 2, totalSteps: 100)
    defer { try? synthetic.remove() }
    synthetic.advance(steps: 3)
    let plan = LaunchPlan(np: 2, tp: 2, dp: 1, hostfile: nil, job: job, trainArguments: [])
    XCTAssertThrowsError(try Launcher.start(plan, in: .default)) { error in
      XCTAssertTrue("\(error)".contains("already running") && "\(error)".contains("tptop stop \(job)"), "\(error)")
    }
    synthetic.finish()
    XCTAssertThrowsError(try Launcher.start(plan, in: .default)) { error in
      XCTAssertTrue("\(error)".contains("already exists (stopped)") && "\(error)".contains("tptop gc \(job)"), "\(error)")
    }
    XCTAssertEqual(try String(contentsOfFile: LogFiles.path(job: job), encoding: .utf8), "the running job's output\n")
  }
}

/// `tptop launch` with a flag tptrain refuses: the job never starts, and the last line says why
/// in tptrain's words (not mpirun's report that follows them in the log).
final class LaunchFailureTests: XCTestCase {
  func testTheLastLineOfAFailedLaunchIsTptrainsError() throws {
    let job = "launch-bad-\(getpid())"
    let logDir = NSTemporaryDirectory() + job
    try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: logDir) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try BuildProducts.path("tptop"))
    p.arguments = ["launch", "--np", "2", "--tp", "2", "--job", job, "--", "--model", "tiny", "--lr", "-1"]
    var env = ProcessInfo.processInfo.environment
    env["TPTOP_LOG_DIR"] = logDir
    p.environment = env
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let data = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 1)
    let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
    XCTAssertEqual(lines.last.map(String.init),
                   "tptop: job \(job) did not start: tptrain: error: --lr must be a finite number > 0, not -1",
                   lines.joined(separator: "\n"))
  }
}

import Foundation
import Telemetry
import TestSupport
import XCTest

@testable import Dashboard

/// Plain-frame mode (TERM=dumb or no terminfo): the end of standard input detaches like `q`.
final class PlainModeTests: XCTestCase {
  func testEndOfInputDetachesEvenFromTheStopConfirmation() {
    var s = AppState()
    XCTAssertEqual(s.handle(.endOfInput, worldSize: 2, tensorCount: 16, desired: .run, now: 0), [.quit])
    _ = s.handle(.char("S"), worldSize: 2, tensorCount: 16, desired: .run, now: 0)
    XCTAssertTrue(s.confirmingStop)
    XCTAssertEqual(s.handle(.endOfInput, worldSize: 2, tensorCount: 16, desired: .run, now: 0), [.quit],
                   "no stop is requested when input ends during the confirmation")
  }

  func testAttachWithStdinAtEndOfFileDetachesAndLeavesTheJobRunning() throws {
    let tptop = try BuildProducts.path("tptop")
    let name = "plain-eof-\(getpid())"
    _ = try syntheticJob(name, steps: 5)

    let p = Process()
    p.executableURL = URL(fileURLWithPath: tptop)
    p.arguments = ["attach", name]
    var env = ProcessInfo.processInfo.environment
    env["TERM"] = "dumb"
    p.environment = env
    p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(15)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning { p.terminate(); p.waitUntilExit() }
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    XCTAssertEqual(p.terminationReason, .exit, "tptop attach still ran 15 s after its input ended")
    XCTAssertEqual(p.terminationStatus, 0)
    XCTAssertTrue(text.contains("detached from \(name)"), text.suffix(400).description)
    XCTAssertTrue(text.contains("step 5"), "a frame of the job was shown first")
    let control = try JobReader(job: name, in: .default)
    XCTAssertEqual(control.control().desired, .run, "detaching did not ask the job to stop")
  }
}

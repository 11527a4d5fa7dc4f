import Foundation
import Glibc
import XCTest

@testable import Telemetry

/// The `tptop` executables next to this test bundle: the debug one that `swift test` just built,
/// and a release one if `swift build -c release --product tptop` was run (the stress test needs
/// its speed). `TPTOP_BIN` overrides both.
enum ToolPaths {
  static var buildDir: URL { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent() }

  static var debug: String? {
    if let p = ProcessInfo.processInfo.environment["TPTOP_BIN"] { return p }
    let p = buildDir.appendingPathComponent("tptop").path
    return FileManager.default.isExecutableFile(atPath: p) ? p : nil
  }

  static var release: String? {
    if let p = ProcessInfo.processInfo.environment["TPTOP_RELEASE_BIN"] { return p }
    let p = buildDir.deletingLastPathComponent().appendingPathComponent("release/tptop").path
    return FileManager.default.isExecutableFile(atPath: p) ? p : nil
  }

  /// `tptop-dev` (the synthetic job, the stress writer and reader) from the same build as `tptop`.
  static func dev(beside tptop: String) -> String {
    URL(fileURLWithPath: tptop).deletingLastPathComponent().appendingPathComponent("tptop-dev").path
  }
}

/// A mutable value handed between threads under a lock.
final class Locked<T>: @unchecked Sendable {
  private var value: T
  private let lock = NSLock()
  init(_ v: T) { value = v }
  func with<R>(_ body: (inout T) -> R) -> R {
    lock.lock()
    defer { lock.unlock() }
    return body(&value)
  }
}

struct ToolResult {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Runs `tool args` to completion.
func runTool(_ tool: String, _ args: [String]) throws -> ToolResult {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: tool)
  p.arguments = args
  let out = Pipe(), err = Pipe()
  p.standardOutput = out
  p.standardError = err
  try p.run()
  // Read both pipes to the end before waiting, so a full pipe cannot block the child.
  let errData = Locked<Data?>(nil)
  let errHandle = err.fileHandleForReading
  Thread { let d = errHandle.readDataToEndOfFile(); errData.with { $0 = d } }.start()
  let outData = out.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  while errData.with({ $0 == nil }) { usleep(1000) }
  return ToolResult(
    status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
    stderr: String(decoding: errData.with { $0 } ?? Data(), as: UTF8.self))
}

/// Starts `tool args` in the background with its output discarded (or sent to `output`).
func startTool(_ tool: String, _ args: [String], output: Pipe? = nil) throws -> Process {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: tool)
  p.arguments = args
  p.standardOutput = output ?? FileHandle.nullDevice
  p.standardError = FileHandle.nullDevice
  try p.run()
  return p
}

/// Polls `cond` every 10 ms for up to `timeout` seconds.
func eventually(_ timeout: Double = 20, _ cond: () -> Bool) -> Bool {
  let end = Date().addingTimeInterval(timeout)
  while Date() < end {
    if cond() { return true }
    usleep(10_000)
  }
  return cond()
}

/// Attaches once the job's segment is ready and every rank is attached.
func attachWhenReady(_ job: String, timeout: Double = 20) -> JobReader? {
  var reader: JobReader?
  _ = eventually(timeout) {
    if reader == nil { reader = try? JobReader(job: job, in: .default) }
    guard let r = reader else { return false }
    return r.ranks().allSatisfy { $0.attached && $0.state != .starting }
  }
  return reader
}

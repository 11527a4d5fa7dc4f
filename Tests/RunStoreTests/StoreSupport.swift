import Foundation
import Glibc
import JobSchema
import TestSupport
import XCTest

@testable import RunStore
@testable import Telemetry

/// A fresh store directory under the temporary directory, removed by `remove()`.
struct TempStore {
  let location: StoreLocation
  init(_ tag: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    location = StoreLocation(directory: dir.path)
  }
  func remove() { try? FileManager.default.removeItem(atPath: location.directory) }
}

func uniqueJob(_ tag: String) -> String { "st-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

/// A step record of rank `rank` at `step` with values derived from both, so any swap shows.
func stepRecord(step: Int, rank: Int, loss: Float? = nil) -> StepRecord {
  var r = StepRecord()
  r.rank = rank
  r.index = UInt64(step - 1)
  r.timestampNs = UInt64(1_000_000_000 + step * 10_000_000 + rank)
  r.step = step
  r.loss = loss ?? (5 - Float(step) * 0.01)
  r.lr = 3e-4
  r.gradNorm = 1 + Float(step % 7) * 0.125
  r.tokens = 128
  r.stepNs = UInt64(10_000_000 + step * 1000 + rank * 100)
  r.forwardNs = 3_000_000
  r.commNs = UInt64(1_000_000 + rank * 1000)
  r.allReduceTotalNs = UInt64(2_000_000 + rank * 1000)
  r.rssBytes = UInt64(100 << 20) + UInt64(rank)
  r.paramBytes = 1 << 20
  r.allReduceHistogram[3] = UInt32(step)
  r.computeBusy = 0.5
  r.commPeerWaitMicros = UInt32(rank * 10)
  return r
}

/// Runs python3 with `script`; nil when python3 is missing (the caller decides).
func python(_ script: String, _ args: [String] = []) throws -> (status: Int32, out: String, err: String) {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  p.arguments = ["python3", "-c", script] + args
  let out = Pipe(), err = Pipe()
  p.standardOutput = out
  p.standardError = err
  try p.run()
  let o = out.fileHandleForReading.readDataToEndOfFile()
  let e = err.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
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

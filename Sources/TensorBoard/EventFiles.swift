// Event files: TensorBoard `Event` messages in record framing. Writing scalars (the first
// record names the file version, as every writer does), reading the scalars back whether a
// writer stored them as `simple_value` (torch's SummaryWriter, TensorFlow 1) or as a scalar
// tensor (TensorFlow 2, torch's `new_style`), and finding the runs of a log directory.

import Foundation
import SwiftProtobuf

/// One scalar of an event file.
public struct ScalarEvent: Sendable, Equatable {
  public var tag: String
  public var step: Int64
  public var wallTime: Double
  public var value: Double
  public init(tag: String, step: Int64, wallTime: Double, value: Double) {
    self.tag = tag
    self.step = step
    self.wallTime = wallTime
    self.value = value
  }
}

/// Writes an event file of scalars.
public final class EventFileWriter {
  let records: RecordWriter
  public var path: String { records.path }

  /// Creates `events.out.tfevents.<seconds>.<host>.<pid>.<suffix>` in `directory` (created if
  /// missing), the name TensorBoard looks for.
  public init(directory: String, wallTime: Double, suffix: String = "tptop") throws {
    do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
      throw TensorBoardError("cannot create \(directory): \(error.localizedDescription)")
    }
    let host = ProcessInfo.processInfo.hostName
    records = try RecordWriter(path: directory + "/events.out.tfevents.\(Int(wallTime)).\(host).\(getpid()).\(suffix)")
    var first = Tensorboard_Event()
    first.wallTime = wallTime
    first.fileVersion = "brain.Event:2"
    try records.write(Array(try first.serializedData()))
  }

  /// Appends scalars of one step, in one event.
  public func write(step: Int64, wallTime: Double, scalars: [(tag: String, value: Double)]) throws {
    var e = Tensorboard_Event()
    e.step = step
    e.wallTime = wallTime
    e.summary.value = scalars.map { s in
      var v = Tensorboard_Summary.Value()
      v.tag = s.tag
      v.simpleValue = Float(s.value)
      return v
    }
    try records.write(Array(try e.serializedData()))
  }

  public func close() throws { try records.close() }
}

/// Reads the scalars of one event file, from where the previous call stopped (so a file that
/// grows is read on as it grows).
public final class EventFileReader {
  let records: RecordReader
  /// Records that framed correctly but did not parse as an `Event`.
  public private(set) var unparsable = 0

  public init(path: String) throws { records = try RecordReader(path: path) }

  public var path: String { records.path }
  /// Why reading stopped for good, nil while the file is sound.
  public var problem: String? { records.problem }

  /// The scalars of the records complete so far; calls `body` for each.
  public func readScalars(_ body: (ScalarEvent) throws -> Void) throws {
    while let data = records.next() {
      guard let event = try? Tensorboard_Event(serializedBytes: data) else { unparsable += 1; continue }
      guard case .summary(let summary)? = event.what else { continue }
      for v in summary.value {
        guard let value = Self.scalar(v) else { continue }
        try body(ScalarEvent(tag: v.tag, step: event.step, wallTime: event.wallTime, value: value))
      }
    }
  }

  /// A summary value's scalar: `simple_value`, or a tensor of one float/double/int element.
  static func scalar(_ v: Tensorboard_Summary.Value) -> Double? {
    switch v.value {
    case .simpleValue(let f): return Double(f)
    case .tensor(let t):
      guard t.tensorShape.dim.reduce(1, { $0 * $1.size }) == 1 else { return nil }
      if let f = t.floatVal.first { return Double(f) }
      if let d = t.doubleVal.first { return d }
      if let i = t.intVal.first { return Double(i) }
      if let i = t.int64Val.first { return Double(i) }
      let c = [UInt8](t.tensorContent)
      switch (t.dtype, c.count) {
      case (1, 4): return Double(Float(bitPattern: UInt32(c[0]) | UInt32(c[1]) << 8 | UInt32(c[2]) << 16 | UInt32(c[3]) << 24))
      case (2, 8):
        return Double(bitPattern: c.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
      default: return nil
      }
    default: return nil
    }
  }
}

/// A TensorBoard log directory: every directory under it that holds event files is a run,
/// named by its path relative to the log directory (the log directory itself by its own name).
public enum LogDirectory {
  /// Whether `path` names an event file.
  public static func isEventFile(_ name: String) -> Bool { name.contains("tfevents") }

  /// Whether `path` is a directory holding event files, itself or below.
  public static func isLogDirectory(_ path: String) -> Bool { !runs(at: path).isEmpty }

  /// The runs under `path`: name and event files (sorted: TensorBoard reads them in name order,
  /// which is creation order).
  public static func runs(at path: String) -> [(name: String, files: [String])] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else { return [] }
    let root = URL(fileURLWithPath: path).standardizedFileURL.path
    var byDir: [String: [String]] = [:]
    if let e = FileManager.default.enumerator(atPath: root) {
      for case let rel as String in e where isEventFile((rel as NSString).lastPathComponent) {
        let dir = (rel as NSString).deletingLastPathComponent
        byDir[dir, default: []].append(root + "/" + rel)
      }
    }
    let base = (root as NSString).lastPathComponent
    return byDir.keys.sorted().map { dir in (dir.isEmpty ? base : dir, byDir[dir]!.sorted()) }
  }

  /// The runs to compare or open: as `runs(at:)`, except that a tptop export (`tptop export
  /// --format tfevents --output DIR`: `DIR/job` beside `DIR/rank0`, `DIR/rank1`, …) is one run,
  /// its job-level series, named by `DIR` (the log directory's own name when `DIR` is it); the
  /// per-rank runs beside a `job` run are that run's detail, not runs of their own.
  public static func jobRuns(at path: String) -> [(name: String, files: [String])] {
    let all = runs(at: path)
    let base = (URL(fileURLWithPath: path).standardizedFileURL.path as NSString).lastPathComponent
    func split(_ name: String) -> (parent: String, leaf: String) {
      let parent = (name as NSString).deletingLastPathComponent
      return (parent, (name as NSString).lastPathComponent)
    }
    let exports = Set(all.map { split($0.name) }.filter { $0.leaf == "job" }.map(\.parent))
    func isRank(_ leaf: String) -> Bool { leaf.hasPrefix("rank") && leaf.count > 4 && leaf.dropFirst(4).allSatisfy(\.isNumber) }
    return all.compactMap { run in
      let (parent, leaf) = split(run.name)
      guard exports.contains(parent) else { return run }
      if leaf == "job" { return (parent.isEmpty ? base : parent, run.files) }
      return isRank(leaf) ? nil : run
    }
  }
}

// Text formats of records for `tptop export`: JSON lines and CSV. One record per line, the
// same columns for steps and events (CSV leaves the other kind's columns empty).

import Foundation
import JobSchema

/// Formats records as JSON lines or CSV.
public enum TelemetryExport {
  /// Export formats.
  public enum Format: String, Sendable, CaseIterable { case jsonl, csv }

  /// CSV column names, in order: the record header, the step field table's recorded fields
  /// (store names; the histogram's 16 buckets after `allreduce_max_ns`), the event's, the wall
  /// clock, the log-named columns of earlier versions in their order (readers by position), then
  /// every other key of the table (new names, e.g. `collective_count`, `data_ms`).
  public static let csvColumns: [String] = {
    var columns = ["type", "rank", "index", "step", "timestamp_ns"]
    for f in StepFields.recorded {
      columns.append(f.column)
      if f.column == "allreduce_max_ns" { columns += (0..<16).map { "allreduce_hist_\($0)" } }
    }
    columns += ["event", "text"] + wallClockColumns + legacyLogColumns
    for (k, _) in stepKeys(StepMetrics()) where !columns.contains(k) { columns.append(k) }
    return columns
  }()

  /// The wall clock of every record: ns since the Unix epoch, and the same as ISO 8601 UTC
  /// (`timestamp_ns` is the boot clock the rings use).
  public static let wallClockColumns = ["unix_ns", "time"]
  /// The log-named columns the CSV had before the step field table, in their order.
  static let legacyLogColumns = [
    "step_ms", "tokens_per_s", "forward_ms", "backward_ms", "optimizer_ms", "comm_ms", "comm_exposed_ms",
    "comm_total_ms", "comm_peer_wait_ms",
  ]

  /// Every key of a step's fields with its text: each recorded field under its name and older
  /// names, then each `--log` form (ms, tokens/s) whose key is not taken already.
  public static func stepKeys(_ m: StepMetrics) -> [(String, String)] {
    var out: [(String, String)] = []
    var taken = Set<String>()
    for f in StepFields.all where f.recorded {
      let text = f.exportText(m)
      for k in [f.name] + f.aliases where taken.insert(k).inserted { out.append((k, text)) }
    }
    for f in StepFields.all {
      for l in f.log where taken.insert(l.key).inserted { out.append((l.key, l.text(m))) }
    }
    return out
  }

  /// What turns ring records into dated, named lines: the offset from the boot clock to the
  /// wall clock at export time, and the job's tensor names (by index).
  public struct Context: Sendable {
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, ns.
    public var wallMinusBootNs: Int64
    /// Tensor names in the job description's order.
    public var tensorNames: [String]

    /// A context measured now.
    public init(tensorNames: [String] = []) {
      self.init(wallMinusBootNs: Int64(bitPattern: telemetryRealtimeNanos()) - Int64(bitPattern: telemetryMonotonicNanos()),
                tensorNames: tensorNames)
    }

    /// A context with a given clock offset (tests).
    public init(wallMinusBootNs: Int64, tensorNames: [String] = []) {
      self.wallMinusBootNs = wallMinusBootNs
      self.tensorNames = tensorNames
    }

    /// Unix ns of a boot-clock timestamp.
    public func unixNs(_ bootNs: UInt64) -> Int64 { Int64(bitPattern: bootNs) &+ wallMinusBootNs }

    /// A tensor's name, or its index when the job description has none.
    public func tensorName(_ i: Int) -> String { tensorNames.indices.contains(i) ? tensorNames[i] : "\(i)" }
  }

  /// ISO 8601 UTC with milliseconds: "2026-12-07T02:33:10.123Z" (the `--log`'s `time` too).
  public static func iso8601(unixNs: Int64) -> String { WallClock.iso8601(unixNs: unixNs) }

  /// The CSV header line (no newline).
  public static var csvHeader: String { csvColumns.joined(separator: ",") }

  /// One record as a line (no newline).
  public static func line(_ record: TelemetryRecord, format: Format, context: Context = Context()) -> String {
    switch format {
    case .jsonl: return json(record, context)
    case .csv: return csv(record, context)
    }
  }

  static func number(_ f: Float) -> String { f.isFinite ? "\(f)" : "null" }

  static func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if u.value < 0x20 {
          let h = String(u.value, radix: 16)
          out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
        } else {
          out.unicodeScalars.append(u)
        }
      }
    }
    return out + "\""
  }

  static func json(_ r: TelemetryRecord, _ c: Context) -> String {
    func wall(_ ns: UInt64) -> String {
      let u = c.unixNs(ns)
      return ",\"unix_ns\":\(u),\"time\":\"\(iso8601(unixNs: u))\""
    }
    switch r {
    case .step(let s):
      let hist = (0..<16).map { "\(s.allReduceHistogram[$0])" }.joined(separator: ",")
      let fields = stepKeys(s.metrics).map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
      return "{\"type\":\"step\",\"rank\":\(s.rank),\"index\":\(s.index),\"step\":\(s.step),\"timestamp_ns\":\(s.timestampNs),"
        + "\(fields),\"allreduce_hist\":[\(hist)]\(wall(s.timestampNs))}"
    case .event(let e):
      return "{\"type\":\"event\",\"rank\":\(e.rank),\"index\":\(e.index),\"step\":\(e.step),"
        + "\"timestamp_ns\":\(e.timestampNs),\"event\":\"\(e.kind.name)\",\"text\":\(jsonString(e.text))\(wall(e.timestampNs))}"
    case .tensorStats(let t):
      let entries = t.entries.enumerated().map { i, n in
        "{\"tensor\":\(t.firstTensor + i),\"weight_norm\":\(number(n.weightNorm)),\"grad_norm\":\(number(n.gradNorm)),\"update_ratio\":\(number(n.updateRatio)),\"name\":\(jsonString(c.tensorName(t.firstTensor + i)))}"
      }.joined(separator: ",")
      return "{\"type\":\"tensor_stats\",\"rank\":\(t.rank),\"index\":\(t.index),\"step\":\(t.step),"
        + "\"timestamp_ns\":\(t.timestampNs),\"tensors\":[\(entries)]\(wall(t.timestampNs))}"
    }
  }

  static func csvField(_ s: String) -> String {
    if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
      return "\"" + s.replacingAll("\"", with: "\"\"") + "\""
    }
    return s
  }

  static func csv(_ r: TelemetryRecord, _ c: Context) -> String {
    var values = [String: String]()
    func wall(_ ns: UInt64) {
      let u = c.unixNs(ns)
      values["unix_ns"] = "\(u)"
      values["time"] = iso8601(unixNs: u)
    }
    func header(_ type: String, rank: Int, index: UInt64, step: Int, timestampNs: UInt64) {
      values["type"] = type
      values["rank"] = "\(rank)"
      values["index"] = "\(index)"
      values["step"] = "\(step)"
      values["timestamp_ns"] = "\(timestampNs)"
    }
    switch r {
    case .step(let s):
      header("step", rank: s.rank, index: s.index, step: s.step, timestampNs: s.timestampNs)
      for (k, v) in stepKeys(s.metrics) { values[k] = v == "null" ? "" : v }
      for i in 0..<16 { values["allreduce_hist_\(i)"] = "\(s.allReduceHistogram[i])" }
      wall(s.timestampNs)
    case .event(let e):
      header("event", rank: e.rank, index: e.index, step: e.step, timestampNs: e.timestampNs)
      values["event"] = e.kind.name
      values["text"] = csvField(e.text)
      wall(e.timestampNs)
    case .tensorStats(let t):
      header("tensor_stats", rank: t.rank, index: t.index, step: t.step, timestampNs: t.timestampNs)
      // by name: "qkvw:weight/grad/update qkvb:…"
      values["text"] = csvField(t.entries.enumerated().map { i, n in
        "\(c.tensorName(t.firstTensor + i)):\(number(n.weightNorm))/\(number(n.gradNorm))/\(number(n.updateRatio))"
      }.joined(separator: " "))
      wall(t.timestampNs)
    }
    return csvColumns.map { values[$0] ?? "" }.joined(separator: ",")
  }
}

extension String {
  /// Replaces every occurrence of `target` (no Foundation needed).
  func replacingAll(_ target: Character, with replacement: String) -> String {
    var out = ""
    for c in self { if c == target { out += replacement } else { out.append(c) } }
    return out
  }
}

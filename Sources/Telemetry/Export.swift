// Text formats of records for `tptop export`: JSON lines and CSV. One record per line, the
// same columns for steps and events (CSV leaves the other kind's columns empty).

import Foundation
import JobSchema

/// Formats records as JSON lines or CSV.
public enum TelemetryExport {
  /// Export formats.
  public enum Format: String, Sendable, CaseIterable { case jsonl, csv }

  /// CSV column names, in order.
  public static let csvColumns: [String] =
    [
      "type", "rank", "index", "step", "timestamp_ns", "loss", "lr", "grad_norm", "tokens", "step_ns",
      "forward_ns", "backward_ns", "optimizer_ns", "comm_ns", "data_ns", "allreduce_count",
      "allreduce_bytes", "allreduce_total_ns", "allreduce_max_ns",
    ] + (0..<16).map { "allreduce_hist_\($0)" }
    + [
      "rss_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes", "compute_busy",
      "gflops", "comm_peer_wait_us", "event", "text",
    ] + wallClockColumns + logColumns

  /// The wall clock of every record: ns since the Unix epoch, and the same as ISO 8601 UTC
  /// (`timestamp_ns` is the boot clock the rings use).
  public static let wallClockColumns = ["unix_ns", "time"]
  /// The step fields under the names and units of tptrain's `--log` lines (ms, tokens/s).
  public static let logColumns = [
    "step_ms", "tokens_per_s", "forward_ms", "backward_ms", "optimizer_ms", "comm_ms", "comm_exposed_ms",
    "comm_total_ms", "comm_peer_wait_ms",
  ]

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

  /// The `--log` names and units of a step's times and rate.
  static func logFields(_ s: StepRecord) -> [(String, String)] {
    func ms(_ ns: UInt64) -> String { String(format: "%.4f", Double(ns) / 1e6) }
    let rate = s.stepNs > 0 ? Double(s.tokens) / (Double(s.stepNs) / 1e9) : 0
    return [
      ("step_ms", ms(s.stepNs)), ("tokens_per_s", String(format: "%.2f", rate)), ("forward_ms", ms(s.forwardNs)),
      ("backward_ms", ms(s.backwardNs)), ("optimizer_ms", ms(s.optimizerNs)), ("comm_ms", ms(s.commNs)),
      ("comm_exposed_ms", ms(s.metrics.commExposedNs)), ("comm_total_ms", ms(s.metrics.commTotalNs)),
      ("comm_peer_wait_ms", ms(s.metrics.commPeerWaitNs)),
    ]
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

  static func stepFields(_ s: StepRecord) -> [(String, String)] {
    [
      ("rank", "\(s.rank)"), ("index", "\(s.index)"), ("step", "\(s.step)"), ("timestamp_ns", "\(s.timestampNs)"),
      ("loss", number(s.loss)), ("lr", number(s.lr)), ("grad_norm", number(s.gradNorm)), ("tokens", "\(s.tokens)"),
      ("step_ns", "\(s.stepNs)"), ("forward_ns", "\(s.forwardNs)"), ("backward_ns", "\(s.backwardNs)"),
      ("optimizer_ns", "\(s.optimizerNs)"), ("comm_ns", "\(s.commNs)"), ("data_ns", "\(s.dataNs)"),
      ("allreduce_count", "\(s.allReduceCount)"), ("allreduce_bytes", "\(s.allReduceBytes)"),
      ("allreduce_total_ns", "\(s.allReduceTotalNs)"), ("allreduce_max_ns", "\(s.allReduceMaxNs)"),
    ] + (0..<16).map { ("allreduce_hist_\($0)", "\(s.allReduceHistogram[$0])") }
      + [
        ("rss_bytes", "\(s.rssBytes)"), ("param_bytes", "\(s.paramBytes)"), ("grad_bytes", "\(s.gradBytes)"),
        ("optimizer_bytes", "\(s.optimizerBytes)"), ("activation_bytes", "\(s.activationBytes)"),
        ("compute_busy", number(s.computeBusy)), ("gflops", number(s.gflops)),
        ("comm_peer_wait_us", "\(s.commPeerWaitMicros)"),
      ]
  }

  static func json(_ r: TelemetryRecord, _ c: Context) -> String {
    func wall(_ ns: UInt64) -> String {
      let u = c.unixNs(ns)
      return ",\"unix_ns\":\(u),\"time\":\"\(iso8601(unixNs: u))\""
    }
    switch r {
    case .step(let s):
      let hist = (0..<16).map { "\(s.allReduceHistogram[$0])" }.joined(separator: ",")
      let fields = (stepFields(s).filter { !$0.0.hasPrefix("allreduce_hist_") } + logFields(s))
        .map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
      return "{\"type\":\"step\",\(fields),\"allreduce_hist\":[\(hist)]\(wall(s.timestampNs))}"
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
      values["type"] = "step"
      for (k, v) in stepFields(s) + logFields(s) { values[k] = v == "null" ? "" : v }
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

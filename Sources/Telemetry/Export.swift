// Text formats of records for `tptop export`: JSON lines and CSV. One record per line, the
// same columns for steps and events (CSV leaves the other kind's columns empty).

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
    ]

  /// The CSV header line (no newline).
  public static var csvHeader: String { csvColumns.joined(separator: ",") }

  /// One record as a line (no newline).
  public static func line(_ record: TelemetryRecord, format: Format) -> String {
    switch format {
    case .jsonl: return json(record)
    case .csv: return csv(record)
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

  static func json(_ r: TelemetryRecord) -> String {
    switch r {
    case .step(let s):
      let hist = (0..<16).map { "\(s.allReduceHistogram[$0])" }.joined(separator: ",")
      let fields = stepFields(s).filter { !$0.0.hasPrefix("allreduce_hist_") }
        .map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
      return "{\"type\":\"step\",\(fields),\"allreduce_hist\":[\(hist)]}"
    case .event(let e):
      return "{\"type\":\"event\",\"rank\":\(e.rank),\"index\":\(e.index),\"step\":\(e.step),"
        + "\"timestamp_ns\":\(e.timestampNs),\"event\":\"\(e.kind.name)\",\"text\":\(jsonString(e.text))}"
    case .tensorStats(let t):
      let entries = t.entries.enumerated().map { i, n in
        "{\"tensor\":\(t.firstTensor + i),\"weight_norm\":\(number(n.weightNorm)),\"grad_norm\":\(number(n.gradNorm)),\"update_ratio\":\(number(n.updateRatio))}"
      }.joined(separator: ",")
      return "{\"type\":\"tensor_stats\",\"rank\":\(t.rank),\"index\":\(t.index),\"step\":\(t.step),"
        + "\"timestamp_ns\":\(t.timestampNs),\"tensors\":[\(entries)]}"
    }
  }

  static func csvField(_ s: String) -> String {
    if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
      return "\"" + s.replacingAll("\"", with: "\"\"") + "\""
    }
    return s
  }

  static func csv(_ r: TelemetryRecord) -> String {
    var values = [String: String]()
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
      for (k, v) in stepFields(s) { values[k] = v == "null" ? "" : v }
    case .event(let e):
      header("event", rank: e.rank, index: e.index, step: e.step, timestampNs: e.timestampNs)
      values["event"] = e.kind.name
      values["text"] = csvField(e.text)
    case .tensorStats(let t):
      header("tensor_stats", rank: t.rank, index: t.index, step: t.step, timestampNs: t.timestampNs)
      values["text"] = csvField(t.entries.enumerated().map { i, n in
        "\(t.firstTensor + i):\(number(n.weightNorm))/\(number(n.gradNorm))/\(number(n.updateRatio))"
      }.joined(separator: " "))
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

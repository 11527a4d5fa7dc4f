// Encoding: which text format a scraper asked for (its `Accept` header), and the registry's
// Prometheus text (format 0.0.4, swift-prometheus' own encoding) turned into OpenMetrics 1.0
// where asked: a counter's family is named without its `_total` suffix (its samples keep it),
// and the exposition ends with `# EOF`.

import Glibc

/// The exposition formats `/metrics` speaks.
public enum ExpositionFormat: Sendable, Hashable {
  /// Prometheus text format 0.0.4.
  case prometheusText
  /// OpenMetrics 1.0.0 text.
  case openMetrics

  /// The response's `Content-Type`.
  public var contentType: String {
    switch self {
    case .prometheusText: return "text/plain; version=0.0.4; charset=utf-8"
    case .openMetrics: return "application/openmetrics-text; version=1.0.0; charset=utf-8"
    }
  }

  /// The format for an `Accept` header: OpenMetrics when the client lists
  /// `application/openmetrics-text` with a quality at least that of any other type it accepts,
  /// else Prometheus text (also without the header).
  public static func negotiate(accept: String?) -> ExpositionFormat {
    guard let accept else { return .prometheusText }
    var openMetrics = -1.0
    var other = -1.0
    for range in accept.split(separator: ",") {
      let parts = range.split(separator: ";").map { $0.trimmingSpaces() }
      guard let type = parts.first?.lowercased(), !type.isEmpty else { continue }
      var q = 1.0
      for p in parts.dropFirst() where p.lowercased().hasPrefix("q=") {
        q = Double(p.dropFirst(2)) ?? 0
      }
      if type == "application/openmetrics-text" {
        openMetrics = max(openMetrics, q)
      } else {
        other = max(other, q)
      }
    }
    return openMetrics > 0 && openMetrics >= other ? .openMetrics : .prometheusText
  }

  /// `text` (the registry's Prometheus text) in this format.
  public func encode(_ text: [UInt8]) -> [UInt8] {
    switch self {
    case .prometheusText: return text
    case .openMetrics: return Self.openMetrics(fromPrometheusText: text)
    }
  }

  /// Renames counter families (`# TYPE x_total counter` → `# TYPE x counter`, and the HELP line
  /// of the same family), and appends `# EOF`.
  static func openMetrics(fromPrometheusText text: [UInt8]) -> [UInt8] {
    // the counter families: names on `# TYPE <name> counter` lines
    var counters: Set<ArraySlice<UInt8>> = []
    forEachLine(text) { line in
      if let name = typeLineName(line, type: "counter") { counters.insert(name) }
    }
    var out: [UInt8] = []
    out.reserveCapacity(text.count + 8)
    let suffix = Array("_total".utf8)
    forEachLine(text) { line in
      // `# HELP name …` or `# TYPE name …` of a counter family: drop `_total` from the name
      if line.starts(with: "# HELP ".utf8) || line.starts(with: "# TYPE ".utf8) {
        let rest = line.dropFirst(7)
        let nameEnd = rest.firstIndex(of: UInt8(ascii: " ")) ?? rest.endIndex
        let name = rest[rest.startIndex..<nameEnd]
        if counters.contains(name) && name.count > suffix.count && name.suffix(suffix.count).elementsEqual(suffix) {
          out.append(contentsOf: line[line.startIndex..<rest.startIndex])
          out.append(contentsOf: name.dropLast(suffix.count))
          out.append(contentsOf: rest[nameEnd...])
          out.append(UInt8(ascii: "\n"))
          return
        }
      }
      out.append(contentsOf: line)
      out.append(UInt8(ascii: "\n"))
    }
    out.append(contentsOf: "# EOF\n".utf8)
    return out
  }

  /// The Prometheus texts of several registries as one exposition, each family once: where it
  /// first appears, with the header (`# HELP`, `# TYPE`) of the first text that has it, then its
  /// samples from every text in turn. A family's block runs from its first header line to the
  /// next family's.
  static func mergeFamilies(_ texts: ArraySlice<[UInt8]>, into out: inout [UInt8]) {
    var order: [ArraySlice<UInt8>] = []
    var parts: [ArraySlice<UInt8>: [ArraySlice<UInt8>]] = [:]
    var total = 0
    for text in texts {
      // the current block: its family, where it starts, where its samples start
      var name: ArraySlice<UInt8>? = nil
      var blockStart = 0, bodyStart = 0
      func close(at end: Int) {
        guard let n = name, blockStart < end else { return }
        if parts[n] == nil {
          order.append(n)
          parts[n] = [text[blockStart..<end]]
          total += end - blockStart
        } else {
          parts[n]!.append(text[bodyStart..<end])
          total += end - bodyStart
        }
      }
      // header lines only: from one line start to the next (memchr), looking at lines that begin with `#`
      text.withUnsafeBufferPointer { buf in
        guard let base = buf.baseAddress else { return }
        var start = 0
        while start < buf.count {
          let nl = memchr(base + start, Int32(UInt8(ascii: "\n")), buf.count - start)
          let end = nl.map { UnsafePointer<UInt8>($0.assumingMemoryBound(to: UInt8.self)) - base } ?? buf.count
          let next = min(end + 1, buf.count)
          if base[start] == UInt8(ascii: "#") {
            let line = text[start..<end]
            if line.starts(with: "# HELP ".utf8) || line.starts(with: "# TYPE ".utf8) {
              let rest = line.dropFirst(7)
              let family = rest[rest.startIndex..<(rest.firstIndex(of: UInt8(ascii: " ")) ?? rest.endIndex)]
              if family != name {
                close(at: start)
                name = family
                blockStart = start
              }
              bodyStart = next
            }
          }
          start = next
        }
      }
      close(at: text.count)
    }
    out.reserveCapacity(out.count + total)
    for n in order { for part in parts[n]! { out.append(contentsOf: part) } }
  }

  /// The family name of a `# TYPE <name> <type>` line, nil for any other line.
  static func typeLineName(_ line: ArraySlice<UInt8>, type: String) -> ArraySlice<UInt8>? {
    guard line.starts(with: "# TYPE ".utf8) else { return nil }
    let rest = line.dropFirst(7)
    guard let space = rest.firstIndex(of: UInt8(ascii: " ")), rest[(space + 1)...].elementsEqual(type.utf8) else { return nil }
    return rest[rest.startIndex..<space]
  }

  /// Calls `body` with each line of `text`, without its newline.
  static func forEachLine(_ text: [UInt8], _ body: (ArraySlice<UInt8>) -> Void) {
    var start = 0
    while start < text.count {
      let end = text[start...].firstIndex(of: UInt8(ascii: "\n")) ?? text.count
      body(text[start..<end])
      start = end + 1
    }
  }
}

extension Substring {
  /// Without leading and trailing spaces and tabs.
  func trimmingSpaces() -> Substring {
    var s = self
    while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
    while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
    return s
  }
}

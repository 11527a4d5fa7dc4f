import Foundation
import Glibc

/// One sample line of a Prometheus text exposition, read independently of the code under test.
struct Sample: Equatable {
  var name: String
  var labels: [String: String]
  var value: Double
}

/// The sample lines of `text` (comments skipped); fails on a line it cannot read.
func parseSamples(_ text: String) throws -> [Sample] {
  var out: [Sample] = []
  for raw in text.split(separator: "\n") where !raw.hasPrefix("#") {
    let line = String(raw)
    var labels: [String: String] = [:]
    let name: String
    let rest: Substring
    if let brace = line.firstIndex(of: "{") {
      name = String(line[..<brace])
      guard let close = line.lastIndex(of: "}") else { throw SampleError(line) }
      var i = line.index(after: brace)
      while i < close {
        guard let eq = line[i...].firstIndex(of: "=") else { throw SampleError(line) }
        let key = String(line[i..<eq])
        var j = line.index(eq, offsetBy: 2)  // after ="
        var value = ""
        while line[j] != "\"" {
          if line[j] == "\\" {
            j = line.index(after: j)
            value.append(line[j] == "n" ? "\n" : line[j])
          } else {
            value.append(line[j])
          }
          j = line.index(after: j)
        }
        labels[key] = value
        i = line.index(after: j)
        if i < close && line[i] == "," { i = line.index(after: i) }
      }
      rest = line[line.index(after: close)...]
    } else {
      guard let space = line.firstIndex(of: " ") else { throw SampleError(line) }
      name = String(line[..<space])
      rest = line[space...]
    }
    let valueText = rest.trimmingCharacters(in: .whitespaces)
    guard let v = Double(valueText) ?? (valueText.lowercased() == "nan" ? .nan : nil) else { throw SampleError(line) }
    out.append(Sample(name: name, labels: labels, value: v))
  }
  return out
}

struct SampleError: Error, CustomStringConvertible {
  let description: String
  init(_ line: String) { description = "cannot read sample line: \(line)" }
}

extension Array where Element == Sample {
  /// The samples named `name` whose labels include `labels`.
  func matching(_ name: String, _ labels: [String: String] = [:]) -> [Sample] {
    filter { s in s.name == name && labels.allSatisfy { s.labels[$0.key] == $0.value } }
  }

  /// The value of the one sample named `name` with `labels`; nil when there is not exactly one.
  func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
    let m = matching(name, labels)
    return m.count == 1 ? m[0].value : nil
  }
}

/// A job name unique to this test process.
func uniqueJob(_ tag: String) -> String { "prom-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

// mpirun's report of the rank that ended a job, read from its stderr or the job's log. mpirun
// words it in one of two ways:
//   "mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed)."
//   "Process name: [[2795,1],1]" followed by "Exit code:    3"

import Foundation

/// The failed rank and cause that mpirun reported.
public struct MPIFailureReport: Sendable, Equatable {
  /// How the rank ended.
  public enum Cause: Sendable, Equatable {
    /// Killed by a signal; mpirun's words, e.g. "9 (Killed)".
    case signal(String)
    /// Exited with this non-zero code.
    case exitCode(Int)
    /// "exited on …" with other words after it (kept), or nothing said (empty).
    case other(String)
  }

  /// World rank, nil when mpirun named none.
  public var rank: Int?
  /// How it ended.
  public var cause: Cause

  /// Creates a report.
  public init(rank: Int?, cause: Cause) {
    self.rank = rank
    self.cause = cause
  }

  /// Whether a signal killed the rank (a crash, not a rank that gave up on its own).
  public var killedBySignal: Bool {
    if case .signal = cause { return true }
    return false
  }

  /// The cause as a phrase after "rank N": "was killed by signal 9 (Killed)", "exited with code 3".
  public var reason: String {
    switch cause {
    case .signal(let s): return "was killed by signal \(s)"
    case .exitCode(let c): return "exited with code \(c)"
    case .other(let rest): return rest.isEmpty ? "failed" : "exited on" + rest
    }
  }

  /// The cause in mpirun's own words: "exited on signal 9 (Killed).", "exited with code 3".
  public var mpirunWords: String {
    switch cause {
    case .signal(let s): return "exited on signal \(s)."
    case .exitCode(let c): return "exited with code \(c)"
    case .other(let rest): return rest.isEmpty ? "failed" : "exited on" + rest + "."
    }
  }

  /// The first failure report in `text` (mpirun's stderr or a job log), or nil.
  public static func parse(_ text: String) -> MPIFailureReport? {
    let lines = text.split(separator: "\n").map { String($0) }
    for line in lines where line.contains("noticed that process rank") {
      let words = line.split(separator: " ").map(String.init)
      guard let i = words.firstIndex(of: "rank"), i + 1 < words.count, let rank = Int(words[i + 1]) else { continue }
      if let s = line.range(of: "exited on signal ") {
        let rest = line[s.upperBound...].trimmingCharacters(in: CharacterSet(charactersIn: ". "))
        return MPIFailureReport(rank: rank, cause: .signal(rest))
      }
      if let s = line.range(of: "exited on") {
        return MPIFailureReport(rank: rank, cause: .other(line[s.upperBound...].trimmingCharacters(in: CharacterSet(charactersIn: "."))))
      }
      return MPIFailureReport(rank: rank, cause: .other(""))
    }
    var rank: Int?
    for line in lines {
      let t = line.trimmingCharacters(in: .whitespaces)
      if t.hasPrefix("Process name:"), let close = t.range(of: "],", options: .backwards) {
        rank = Int(t[close.upperBound...].filter { $0.isNumber })
      }
      if t.hasPrefix("Exit code:"), let code = Int(t.dropFirst("Exit code:".count).trimmingCharacters(in: .whitespaces)) {
        return MPIFailureReport(rank: rank, cause: .exitCode(code))
      }
    }
    return nil
  }
}

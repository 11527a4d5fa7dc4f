import Foundation

/// CPU budgets of other processes, judged on a condition rather than a fixed window: a process
/// that should be asleep is sampled over successive windows until one stays under the budget, so
/// a loaded host (which only delays when the process settles) cannot fail the check, while a
/// process that really spins fails it in every window until the deadline.
public enum CPUShare {
  /// CPU time (user + system) of `pid` so far, seconds; nil once the process is gone.
  public static func seconds(_ pid: Int32) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // after the command: state is [0]; utime and stime are fields 14 and 15 of the line
    guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
  }

  /// One window's measurement: the processes' CPU seconds per wall second, in total and each.
  public struct Window: CustomStringConvertible {
    public var wall: Double
    public var perProcess: [Double]
    public var total: Double { perProcess.reduce(0, +) }
    public var description: String {
      let each = perProcess.map { String(format: "%.2f", $0 * 100) }.joined(separator: ", ")
      return String(format: "%.2f %% of one core over %.1f s (each: %@ %%)", total * 100, wall, each)
    }
  }

  /// Measures `pids` over windows of `window` seconds until one window's total share is at most
  /// `budget` (plus one clock tick of rounding), or `timeout` seconds have passed.
  /// Returns the quietest window and whether it met the budget. `alsoWhile` is checked after
  /// each window: a window in which it does not hold does not count (e.g. a job left its phase).
  public static func settles(_ pids: [Int32], under budget: Double, window: Double = 2, timeout: Double = 60,
                             alsoWhile holds: () -> Bool = { true }) -> (met: Bool, quietest: Window?) {
    let tick = 1 / Double(sysconf(Int32(_SC_CLK_TCK)))
    let deadline = Date().addingTimeInterval(timeout)
    var quietest: Window?
    repeat {
      let before = pids.map { seconds($0) ?? 0 }
      let t0 = Date()
      usleep(UInt32(window * 1e6))
      let wall = Date().timeIntervalSince(t0)
      let after = pids.map { seconds($0) ?? 0 }
      guard holds() else { continue }
      let w = Window(wall: wall, perProcess: zip(after, before).map { ($0 - $1) / wall })
      if quietest == nil || w.total < quietest!.total { quietest = w }
      if w.total * wall <= budget * wall + tick { return (true, w) }
    } while Date() < deadline
    return (false, quietest)
  }
}

// What /proc says about a job's processes.

import Foundation

/// Process lookups in /proc.
public enum ProcessTable {
  /// Direct children of `pid` (mpirun's ranks on this node).
  public static func children(of pid: Int32) -> [Int32] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return names.compactMap { Int32($0) }.filter { child in
      guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
            let close = stat.range(of: ")", options: .backwards) else { return false }
      let fields = stat[close.upperBound...].split(separator: " ")
      return fields.count > 1 && Int32(fields[1]) == pid
    }
  }
}

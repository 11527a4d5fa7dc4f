// Finding the programs a job runs: mpirun on PATH, tptrain and tptop next to this executable.

import Foundation

/// Executable lookup.
public enum Executables {
  /// This process's executable (resolved through /proc/self/exe, else argv[0]).
  public static var currentExecutable: String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
  }

  /// `name` next to this process's executable (when `nextToSelf`), then on PATH; nil if neither.
  public static func find(_ name: String, nextToSelf: Bool = true) -> String? {
    if nextToSelf {
      let dir = URL(fileURLWithPath: currentExecutable).deletingLastPathComponent().path
      let p = dir + "/" + name
      if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
      let p = "\(dir)/\(name)"
      if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
  }

  /// `name` itself when it holds a slash, else its first match on PATH (else `name`).
  public static func resolve(_ name: String) -> String {
    name.contains("/") ? name : find(name, nextToSelf: false) ?? name
  }
}

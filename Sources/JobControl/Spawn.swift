// posix_spawn with stdin from /dev/null and stdout and stderr into one file. Foundation's Process
// keeps pipes and descriptors that daemons started by the child (mpirun's, tmux's) inherit; a
// file does not stall anyone.

import Foundation

/// Starting a program with its output in a file.
public enum Spawn {
  /// How the output file is opened.
  public enum Output: Sendable {
    /// Appended to (created 0644 when missing).
    case append
    /// Truncated (created 0600 when missing).
    case truncate
  }

  /// Starts `argv[0]` (`program`, an absolute path) with `argv`, stdin from /dev/null and
  /// stdout + stderr into `outputPath`; in a new session (so terminal signals and hang-ups do not
  /// reach it) when `newSession`. Returns its pid, or the `posix_spawn` error number.
  public static func start(_ program: String, _ argv: [String], outputPath: String, output: Output,
                           newSession: Bool) -> Result<pid_t, Errno> {
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    // POSIX_SPAWN_SETSID (glibc ≥ 2.26, value 0x80; hidden behind _GNU_SOURCE in the header).
    if newSession { posix_spawnattr_setflags(&attr, Int16(0x80)) }
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    let (flags, mode): (Int32, mode_t) = output == .append ? (O_WRONLY | O_CREAT | O_APPEND, 0o644) : (O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&fa, 1, outputPath, flags, mode)
    posix_spawn_file_actions_adddup2(&fa, 1, 2)
    let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, program, &fa, &attr, cargs, environ)
    return rc == 0 ? .success(pid) : .failure(Errno(rc))
  }

  /// An error number from a failed call.
  public struct Errno: Error, Sendable, CustomStringConvertible {
    /// The raw value.
    public var code: Int32
    /// Wraps `code`.
    public init(_ code: Int32) { self.code = code }
    /// strerror's text.
    public var description: String { String(cString: strerror(code)) }
  }
}

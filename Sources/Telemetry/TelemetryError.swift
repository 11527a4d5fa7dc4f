import Glibc

/// Every way attaching to, creating or steering a segment can fail. `description` is one line
/// naming the problem and the fix.
public enum TelemetryError: Error, CustomStringConvertible, Equatable {
  /// The job name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
  case invalidJobName(String)
  /// No segment for this job exists.
  case noSuchJob(String)
  /// Creation with `O_EXCL` found an existing segment.
  case alreadyExists(String)
  /// /dev/shm has no room for the segment.
  case noSpace(job: String, bytes: Int)
  /// The segment does not start with the tptop magic.
  case wrongMagic(String)
  /// The segment has another major version.
  case versionMismatch(job: String, found: UInt32, expected: UInt32)
  /// The segment is smaller than its header claims, or smaller than a header.
  case truncated(job: String, actual: Int, expected: Int)
  /// The creator has not finished writing the segment.
  case notReady(String)
  /// The segment is still not ready long after it was created: its creator died creating it.
  case abandoned(job: String, seconds: Int)
  /// The segment belongs to another user.
  case foreignOwner(job: String, owner: UInt32, me: UInt32)
  /// A header field is out of range.
  case corrupt(job: String, detail: String)
  /// A system call failed.
  case system(call: String, job: String, errno: Int32)
  /// A configuration value is out of range.
  case invalidArgument(String)
  /// A control write was refused (e.g. resuming a stopped job).
  case controlRefused(String)
  /// The segment was attached read-only and a write was asked for.
  case readOnly(String)

  public var description: String {
    switch self {
    case .invalidJobName(let n):
      return "invalid job name '\(n)': use 1–63 characters from A-Z a-z 0-9 . _ -"
    case .noSuchJob(let n):
      return "no job '\(n)' on this machine (no /dev/shm/tptop.\(n)); run `tptop ls` to see the jobs"
    case .alreadyExists(let n):
      return "segment /dev/shm/tptop.\(n) already exists; choose another --job name or run `tptop gc`"
    case .noSpace(let n, let b):
      return "no space in /dev/shm for job '\(n)' (\(b) bytes needed); free /dev/shm (tptop gc) or use fewer ring slots"
    case .wrongMagic(let n):
      return "/dev/shm/tptop.\(n) is not a tptop telemetry segment (wrong magic); remove it with rm if it is stale"
    case .versionMismatch(let n, let f, let e):
      return "job '\(n)' uses telemetry major version \(f), this tptop reads version \(e); use the tptop built with that tptrain"
    case .truncated(let n, let a, let e):
      return "segment of job '\(n)' is truncated (\(a) bytes, header needs \(e)); remove it with `tptop gc` or rm"
    case .notReady(let n):
      return "job '\(n)' is still creating its segment (not ready); retry in a moment"
    case .abandoned(let n, let s):
      return "segment of job '\(n)' was never completed (still not ready \(s) s after its creation: its creator died); remove it with `tptop gc` or rm"
    case .foreignOwner(let n, let o, let m):
      return "job '\(n)' belongs to uid \(o), not to you (uid \(m)); run tptop as that user"
    case .corrupt(let n, let d):
      return "segment of job '\(n)' is corrupt (\(d)); remove it with rm /dev/shm/tptop.\(n)"
    case .system(let c, let n, let e):
      return "\(c) failed for job '\(n)': \(String(cString: strerror(e)))"
    case .invalidArgument(let s):
      return "invalid argument: \(s)"
    case .controlRefused(let s):
      return s
    case .readOnly(let n):
      return "job '\(n)' was attached read-only; attach with control access to steer it"
    }
  }
}

import Glibc

/// Where `tptop export --output P` writes, and how.
///
/// - `-` is standard output.
/// - A regular file (or a path that does not exist yet) is replaced atomically: the text goes to a
///   temporary file beside it, which is then renamed over it, so a reader never sees half an
///   export and a failed write leaves the old file as it was.
/// - Anything else that exists — a symbolic link, a device such as `/dev/null`, a FIFO — is written
///   through: opened and truncated in place, never replaced by a regular file (a dangling link's
///   file is created).
/// - A directory is refused.
/// - A symbolic link in a sticky world-writable directory (/tmp) is followed only when this user
///   or the directory's owner owns it, the rule of the kernel's `fs.protected_symlinks`, applied
///   also where that protection is off: another user's link there is a trap, not a target.
public enum OutputFile {
  /// A write that failed, with one line naming the problem and the fix.
  public struct Failure: Error, CustomStringConvertible {
    public var description: String
  }

  /// Writes `bytes` to `path` as described above.
  public static func write(_ bytes: [UInt8], to path: String) throws {
    let stream = try Stream(path: path)
    try stream.write(bytes)
    try stream.finish()
  }

  /// A write to `path` under the same rules as `write(_:to:)`, in pieces, for output too large
  /// to hold at once (a stored run's export): the pieces go to the temporary file beside a
  /// regular file, which `finish()` renames into place (a failure removes it and leaves the old
  /// file as it was), or straight through a link, device or FIFO, or to standard output.
  public final class Stream {
    private var fd: Int32
    private let path: String
    private let shown: String
    private let temporary: String?

    /// Opens `path` ("-": standard output).
    /// - Throws: `Failure` (a directory, another user's link in /tmp, an unwritable place).
    public init(path: String) throws {
      self.path = path
      if path == "-" {
        (fd, shown, temporary) = (STDOUT_FILENO, "standard output", nil)
        return
      }
      shown = path
      var st = stat()
      if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG {
        if (st.st_mode & S_IFMT) == S_IFDIR { throw Failure(description: "\(path) is a directory: name a file") }
        if (st.st_mode & S_IFMT) == S_IFLNK, let refusal = untrustedLink(path, owner: st.st_uid) {
          throw Failure(description: refusal)
        }
        fd = open(path, O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw failure("cannot open \(path)", errno) }
        temporary = nil
        return
      }
      let slash = path.lastIndex(of: "/")
      let dir = slash.map { String(path[...$0]) } ?? ""
      let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
      var template = Array("\(dir).\(base).tmp-XXXXXX".utf8CString)
      fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
      guard fd >= 0 else { throw failure("cannot write in the directory of \(path)", errno) }
      temporary = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { abandon() }

    /// Writes `bytes` after what was written before.
    public func write(_ bytes: [UInt8]) throws {
      do { try writeAll(fd, bytes, path: shown) } catch {
        abandon()
        throw error
      }
    }

    /// Ends the write: the temporary file synced and renamed over `path`, or the file closed.
    public func finish() throws {
      guard fd >= 0 else { return }
      if let tmp = temporary {
        guard fsync(fd) == 0 else {
          let e = errno
          abandon()
          throw failure("cannot write \(path)", e)
        }
        _ = fchmod(fd, 0o644 & ~currentUmask())
        close(fd)
        fd = -1
        guard rename(tmp, path) == 0 else {
          let e = errno
          unlink(tmp)
          throw failure("cannot replace \(path)", e)
        }
      } else if fd != STDOUT_FILENO {
        close(fd)
        fd = -1
      }
    }

    /// Gives up: the temporary file removed (the old file untouched), the descriptor closed.
    private func abandon() {
      guard fd >= 0 else { return }
      if let tmp = temporary {
        close(fd)
        unlink(tmp)
      } else if fd != STDOUT_FILENO {
        close(fd)
      }
      fd = -1
    }
  }

  /// Why the symbolic link `path`, owned by `owner`, must not be followed; nil when it may.
  static func untrustedLink(_ path: String, owner: uid_t) -> String? {
    let me = geteuid()
    guard owner != me else { return nil }
    let slash = path.lastIndex(of: "/")
    let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    var d = stat()
    guard stat(dir, &d) == 0 else { return nil }
    let stickyWorldWritable = d.st_mode & S_ISVTX != 0 && d.st_mode & S_IWOTH != 0
    guard stickyWorldWritable && owner != d.st_uid else { return nil }
    return "\(path) is a symbolic link of uid \(owner) in the sticky world-writable directory \(dir): "
      + "not following another user's link there; remove it or choose another --output"
  }

  static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
    var done = 0
    while done < bytes.count {
      let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
      if n < 0 {
        if errno == EINTR { continue }
        throw failure("cannot write \(path)", errno)
      }
      done += n
    }
  }

  static func currentUmask() -> mode_t {
    let m = umask(0o022)
    umask(m)
    return m
  }

  static func failure(_ what: String, _ code: Int32) -> Failure {
    let reason = String(cString: strerror(code))
    let fix: String
    switch code {
    case ENOSPC: fix = "free space on that file system or write elsewhere"
    case EACCES, EPERM, EROFS: fix = "choose a writable location"
    case ENOENT, ENOTDIR: fix = "check that the directory exists"
    default: fix = "choose another --output"
    }
    return Failure(description: "\(what): \(reason); \(fix)")
  }
}

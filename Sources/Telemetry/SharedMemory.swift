import Glibc

/// Monotonic clock, ns (CLOCK_MONOTONIC is machine-wide, so ages compare across processes).
@inline(__always)
public func telemetryMonotonicNanos() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Wall clock, ns since the Unix epoch.
public func telemetryRealtimeNanos() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_REALTIME, &ts)
  return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// The segments a process sees: those of the default namespace (`/dev/shm/tptop.<job>`) or of a
/// named one (`/dev/shm/tptop@<namespace>.<job>`, a node simulated with tptrain --simulate-nodes).
/// No segment of one namespace is visible from another. A value: each command and the trainer
/// make it once from their flags and hand it to whatever opens, lists or removes segments.
public struct SegmentSpace: Hashable, Sendable {
  /// nil for the default namespace.
  public let namespace: String?

  public init(namespace: String? = nil) { self.namespace = namespace }

  /// The default namespace.
  public static let `default` = SegmentSpace()

  /// Prefix of every segment of this namespace in /dev/shm.
  public var prefix: String { namespace.map { "tptop@\($0)." } ?? "tptop." }

  /// The shm_open name, e.g. "/tptop.run1".
  public func shmName(job: String) throws -> String {
    guard SegmentName.isValid(job) else { throw TelemetryError.invalidJobName(job) }
    return "/" + prefix + job
  }

  /// The segment's path in /dev/shm (for stat and access; the name need not be valid).
  public func path(job: String) -> String { "/dev/shm/" + prefix + job }

  /// The job names of all segments of this namespace in /dev/shm, sorted.
  public func allJobs() -> [String] {
    guard let dir = opendir("/dev/shm") else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let ent = readdir(dir) {
      let name = withUnsafeBytes(of: ent.pointee.d_name) { raw -> String in
        let n = raw.firstIndex(of: 0) ?? raw.count
        return String(decoding: raw[0..<n], as: UTF8.self)
      }
      if name.hasPrefix(prefix) {
        let job = String(name.dropFirst(prefix.count))
        if SegmentName.isValid(job) { names.append(job) }
      }
    }
    return names.sorted()
  }
}

/// Job and namespace names.
public enum SegmentName {
  /// Whether `name` can be a namespace: 1–32 characters from `[A-Za-z0-9_-]`.
  public static func isValidNamespace(_ name: String) -> Bool {
    let u = Array(name.utf8)
    return !u.isEmpty && u.count <= 32 && u.allSatisfy { c in
      (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D
    }
  }

  /// Whether `job` is a valid job name: 1–63 characters from `[A-Za-z0-9._-]`, not "." or "..".
  public static func isValid(_ job: String) -> Bool {
    let u = Array(job.utf8)
    guard !u.isEmpty && u.count <= 63 && job != "." && job != ".." else { return false }
    return u.allSatisfy { c in
      (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
        || c == 0x2E || c == 0x5F || c == 0x2D
    }
  }

  /// A job name from the current time and pid, e.g. "job-20261128-220501-4242".
  public static func defaultJobName() -> String {
    var t = time(nil)
    var tmv = tm()
    gmtime_r(&t, &tmv)
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    let date = "\(tmv.tm_year + 1900)\(two(tmv.tm_mon + 1))\(two(tmv.tm_mday))"
    let clock = "\(two(tmv.tm_hour))\(two(tmv.tm_min))\(two(tmv.tm_sec))"
    return "job-\(date)-\(clock)-\(getpid())"
  }
}

/// A mapping of a POSIX shared-memory object. Unmapped on deinit.
final class MappedSegment {
  let base: UnsafeMutableRawPointer
  /// Bytes mapped (the object's size when mapped).
  let size: Int
  let writable: Bool
  /// The file's owner (`st_uid`): who a segment belongs to is judged by the file, which only
  /// its creator (or root) can make, never by a field anyone who can write the file can set.
  let fileOwner: UInt32
  /// Bytes of the file that are backed by memory (`st_blocks` × 512): a ready segment is fully
  /// allocated by its creator, so less means a crafted sparse file.
  let allocatedBytes: Int
  /// The file's inode, so a later window onto the same name can check it is the same file.
  let inode: UInt64

  private init(base: UnsafeMutableRawPointer, size: Int, writable: Bool, fileOwner: UInt32 = geteuid(),
               allocatedBytes: Int = Int.max, inode: UInt64 = 0) {
    self.base = base
    self.size = size
    self.writable = writable
    self.fileOwner = fileOwner
    self.allocatedBytes = allocatedBytes
    self.inode = inode
  }

  deinit { munmap(base, size) }

  /// Retries `body` while it fails with EINTR; returns its result and the errno of a failure.
  private static func retrying(_ body: () -> Int32) -> (Int32, Int32) {
    while true {
      let r = body()
      if r == -1 {
        let e = errno
        if e == EINTR { continue }
        return (r, e)
      }
      return (r, 0)
    }
  }

  /// Creates the object exclusively (0600), sizes it, reserves its pages and maps it.
  static func create(job: String, in space: SegmentSpace, size: Int) throws -> MappedSegment {
    let name = try space.shmName(job: job)
    let (fd, e) = retrying { shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0o600) }
    if fd < 0 {
      if e == EEXIST { throw TelemetryError.alreadyExists(job) }
      throw TelemetryError.system(call: "shm_open", job: job, errno: e)
    }
    defer { close(fd) }
    func fail(_ err: TelemetryError) -> TelemetryError {
      shm_unlink(name)
      return err
    }
    let (tr, te) = retrying { ftruncate(fd, off_t(size)) }
    if tr != 0 { throw fail(.system(call: "ftruncate", job: job, errno: te)) }
    var fr: Int32
    repeat { fr = posix_fallocate(fd, 0, off_t(size)) } while fr == EINTR
    if fr == ENOSPC { throw fail(.noSpace(job: job, bytes: size)) }
    if fr != 0 { throw fail(.system(call: "posix_fallocate", job: job, errno: fr)) }
    guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED
    else { throw fail(.system(call: "mmap", job: job, errno: errno)) }
    return MappedSegment(base: p, size: size, writable: true)
  }

  /// Opens and maps an existing object. `writable` maps it read-write.
  static func open(job: String, in space: SegmentSpace, writable: Bool) throws -> MappedSegment {
    let name = try space.shmName(job: job)
    let (fd, e) = retrying { shm_open(name, writable ? O_RDWR : O_RDONLY, 0) }
    if fd < 0 {
      if e == ENOENT { throw TelemetryError.noSuchJob(job) }
      if e == EACCES {
        // 0600 objects of other users: report the owner.
        var st = stat()
        let owner = stat(space.path(job: job), &st) == 0 ? st.st_uid : UInt32.max
        throw TelemetryError.foreignOwner(job: job, owner: owner, me: geteuid())
      }
      throw TelemetryError.system(call: "shm_open", job: job, errno: e)
    }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw TelemetryError.system(call: "fstat", job: job, errno: errno) }
    if (st.st_mode & S_IFMT) != S_IFREG {
      // a directory or device someone put under the segment's name: nothing a reader can map
      let what = (st.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "not a regular file"
      throw TelemetryError.corrupt(job: job, detail: "\(space.path(job: job)) is \(what)")
    }
    let size = Int(st.st_size)
    if size < 8 {
      if size == 0 { throw TelemetryError.notReady(job) }
      throw TelemetryError.truncated(job: job, actual: size, expected: SegmentLayout.Header.size)
    }
    let prot = writable ? PROT_READ | PROT_WRITE : PROT_READ
    guard let p = mmap(nil, size, prot, MAP_SHARED, fd, 0), p != MAP_FAILED
    else { throw TelemetryError.system(call: "mmap", job: job, errno: errno) }
    return MappedSegment(base: p, size: size, writable: writable, fileOwner: st.st_uid,
                         allocatedBytes: Int(clamping: st.st_blocks) &* 512, inode: UInt64(st.st_ino))
  }

  /// Maps `length` bytes at page-aligned `offset` read-write (the control page of a read-only
  /// attachment). Refuses a file that is not `inode` or not this user's (a name replaced since
  /// the attachment, or another user's segment opened by root).
  static func openWindow(job: String, in space: SegmentSpace, offset: Int, length: Int, inode: UInt64) throws -> MappedSegment {
    let name = try space.shmName(job: job)
    let (fd, e) = retrying { shm_open(name, O_RDWR, 0) }
    if fd < 0 {
      if e == EACCES {
        throw TelemetryError.foreignOwner(job: job, owner: UInt32.max, me: geteuid())
      }
      throw TelemetryError.system(call: "shm_open", job: job, errno: e)
    }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw TelemetryError.system(call: "fstat", job: job, errno: errno) }
    if st.st_uid != geteuid() { throw TelemetryError.foreignOwner(job: job, owner: st.st_uid, me: geteuid()) }
    if UInt64(st.st_ino) != inode {
      throw TelemetryError.corrupt(job: job, detail: "the segment was replaced while it was open")
    }
    guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(offset)),
      p != MAP_FAILED
    else { throw TelemetryError.system(call: "mmap", job: job, errno: errno) }
    return MappedSegment(base: p, size: length, writable: true)
  }

  /// Removes the object's name (existing mappings stay valid).
  static func unlink(job: String, in space: SegmentSpace) throws {
    let name = try space.shmName(job: job)
    if shm_unlink(name) != 0 {
      let e = errno
      if e == ENOENT { throw TelemetryError.noSuchJob(job) }
      throw TelemetryError.system(call: "shm_unlink", job: job, errno: e)
    }
  }
}

/// Typed access to mapped memory at byte offsets.
struct Memory {
  let base: UnsafeMutableRawPointer

  @inline(__always) func u64(_ off: Int) -> UInt64 { base.load(fromByteOffset: off, as: UInt64.self) }
  @inline(__always) func u32(_ off: Int) -> UInt32 { base.load(fromByteOffset: off, as: UInt32.self) }
  @inline(__always) func i32(_ off: Int) -> Int32 { base.load(fromByteOffset: off, as: Int32.self) }
  @inline(__always) func i64(_ off: Int) -> Int64 { base.load(fromByteOffset: off, as: Int64.self) }
  @inline(__always) func set<T>(_ off: Int, _ v: T) { base.storeBytes(of: v, toByteOffset: off, as: T.self) }
  func text(_ off: Int, capacity: Int) -> String {
    FixedText.load(UnsafeRawPointer(base + off), length: capacity)
  }
  func setText(_ off: Int, _ s: String, capacity: Int) {
    FixedText.store(s, into: base + off, capacity: capacity)
  }
}

// llm.c GPT-2 checkpoints: 256 int32 header (magic 20240326, version 3, maxT, V, L, H, C, Vp)
// then fp32 tensors in llm.c order. Every rank reads only its slices; writing is done by the
// ranks of DP replica 0, each at its slices' offsets in a temporary file that is fsync'd and
// renamed into place, so the file is never half-written.

import Glibc
import TPComm
import TPKernels

public let checkpointMagic: Int32 = 20240326
public let checkpointVersion: Int32 = 3
public let checkpointHeaderBytes = 1024

public enum Checkpoint {
  /// Reads and validates a checkpoint's header and size.
  public static func readConfig(path: String) throws -> GPTConfig {
    let fd = open(path, O_RDONLY)
    if fd < 0 { throw EngineError("cannot open checkpoint \(path): \(String(cString: strerror(errno))); pass an existing llm.c GPT-2 checkpoint to --init-from") }
    defer { close(fd) }
    var header = [Int32](repeating: 0, count: 256)
    let got = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 1024, 0) }
    if got != 1024 { throw EngineError("checkpoint \(path) is truncated: \(max(0, got)) bytes, shorter than its 1024-byte header") }
    if header[0] != checkpointMagic { throw EngineError("checkpoint \(path) has wrong magic \(header[0]) (expected \(checkpointMagic)): not an llm.c GPT-2 checkpoint") }
    if header[1] != checkpointVersion { throw EngineError("checkpoint \(path) has version \(header[1]); only version \(checkpointVersion) (fp32) is supported") }
    let c = GPTConfig(maxSeqLen: Int(header[2]), vocabSize: Int(header[3]), paddedVocabSize: Int(header[7]),
                      numLayers: Int(header[4]), numHeads: Int(header[5]), channels: Int(header[6]))
    do { try c.validate() } catch let e as EngineError {
      throw EngineError("checkpoint \(path) has an impossible header: \(e.message)")
    }
    var st = stat()
    fstat(fd, &st)
    let expected = checkpointHeaderBytes + 4 * c.parameterCount
    if Int(st.st_size) != expected {
      throw EngineError("checkpoint \(path) is \(st.st_size) bytes but its header (L\(c.numLayers) C\(c.channels) H\(c.numHeads) Vp\(c.paddedVocabSize) maxT\(c.maxSeqLen)) needs \(expected): the file is truncated or corrupt")
    }
    return c
  }

  static func header(_ c: GPTConfig) -> [Int32] {
    var h = [Int32](repeating: 0, count: 256)
    h[0] = checkpointMagic; h[1] = checkpointVersion; h[2] = Int32(c.maxSeqLen); h[3] = Int32(c.vocabSize)
    h[4] = Int32(c.numLayers); h[5] = Int32(c.numHeads); h[6] = Int32(c.channels); h[7] = Int32(c.paddedVocabSize)
    return h
  }
}

/// Repeats `transfer(bufferOffset, count, fileOffset)` (one pread or pwrite) until `n` bytes
/// have moved, retrying on EINTR; false on an error or end of file.
private func transferFully(_ n: Int, _ offset: Int, _ transfer: (Int, Int, off_t) -> Int) -> Bool {
  var done = 0
  while done < n {
    let r = transfer(done, n - done, off_t(offset + done))
    if r < 0 && errno == EINTR { continue }
    if r <= 0 { return false }
    done += r
  }
  return true
}

/// Reads exactly `n` bytes at `offset` of `fd` into `buf`.
func preadFully(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ n: Int, _ offset: Int) -> Bool {
  transferFully(n, offset) { pread(fd, buf + $0, $1, $2) }
}

/// Writes exactly `n` bytes of `buf` at `offset` of `fd`.
func pwriteFully(_ fd: Int32, _ buf: UnsafeRawPointer, _ n: Int, _ offset: Int) -> Bool {
  transferFully(n, offset) { pwrite(fd, buf + $0, $1, $2) }
}

extension GPT {
  /// Visits the parts of this rank's slices that lie in the flat local `range`, as they sit in a
  /// global tensor set stored in llm.c order from `fileBase`: `body(fileByteOffset,
  /// localIndex, count)`; replicated tensors only on TP rank 0 when `replicatedOnce`. Stops at
  /// the first `body` returning false and returns that tensor's name.
  private func forEachStoredRun(in range: Range<Int>, fileBase: Int, replicatedOnce: Bool,
                                _ body: (Int, Int, Int) -> Bool) -> String? {
    var fileOffset = fileBase
    var localBase = 0
    for (i, t) in layout.enumerated() {
      defer { localBase += localSizes[i]; fileOffset += 4 * t.globalCount }
      let lo = max(range.lowerBound, localBase) - localBase, hi = min(range.upperBound, localBase + localSizes[i]) - localBase
      if lo >= hi || (replicatedOnce && t.split == .replicated && local.tpRank != 0) { continue }
      var failed = false
      t.forEachLocalRun(rank: local.tpRank) { g, l, n in
        let a = max(l, lo), b = min(l + n, hi)
        if !failed && a < b && !body(fileOffset + 4 * (g + a - l), localBase + a, b - a) { failed = true }
      }
      if failed { return t.name }
    }
    return nil
  }

  /// Reads this rank's slices of a global tensor set stored in llm.c order from `fileBase` in
  /// `fd` into `buffer` (local layout). Works for any saved TP size: the file is global. With
  /// `range`, only the flat local elements in it, `buffer` holding element `bufferBase` first
  /// (an optimizer partition's moments).
  func readSlices(fd: Int32, into buffer: FloatPtr, fileBase: Int, range: Range<Int>? = nil, bufferBase: Int = 0) -> String? {
    forEachStoredRun(in: range ?? 0..<numLocalParameters, fileBase: fileBase, replicatedOnce: false) { offset, l, n in
      preadFully(fd, buffer + (l - bufferBase), 4 * n, offset)
    }
  }

  /// Writes this rank's slices of `buffer` (local layout) at their global offsets from
  /// `fileBase`; replicated tensors only from TP rank 0. `range` and `bufferBase` as for
  /// `readSlices`. Returns false on an I/O error.
  func writeSlices(fd: Int32, from buffer: FloatPtr, fileBase: Int, range: Range<Int>? = nil, bufferBase: Int = 0) -> Bool {
    forEachStoredRun(in: range ?? 0..<numLocalParameters, fileBase: fileBase, replicatedOnce: true) { offset, l, n in
      pwriteFully(fd, buffer + (l - bufferBase), 4 * n, offset)
    } == nil
  }

  /// Loads this rank's slices from an llm.c checkpoint whose config equals `config`.
  public func load(path: String) throws {
    let fd = open(path, O_RDONLY)
    if fd < 0 { throw EngineError("cannot open checkpoint \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    if let bad = readSlices(fd: fd, into: paramsMemory, fileBase: checkpointHeaderBytes) {
      throw EngineError("checkpoint \(path) could not be read at tensor \(bad): truncated or unreadable")
    }
  }

  /// Writes the model to `path` as an llm.c checkpoint. Collective over `world`: every rank
  /// calls it; ranks of DP replica 0 write their slices (replicated tensors by TP rank 0).
  /// Where it writes is `ModelFileTarget`'s rule: a regular file is replaced atomically (a
  /// symbolic link keeps naming the file it named), a character device is written through.
  public func save(path requested: String, world: Communicator, dpRank: Int) throws {
    // every rank resolves the same path alike
    let target: ModelFileTarget
    do { target = try ModelFileTarget(requested) } catch let e as EngineError { throw EngineError.agreed(e.message) }
    let path = target.path
    let tmp = target.isDevice ? path : path + ".tmp"
    var failed: Int32 = 0
    var failure: Int32 = 0
    if world.rank == 0 {
      let fd = open(tmp, target.isDevice ? O_WRONLY : O_CREAT | O_TRUNC | O_WRONLY, 0o644)
      if fd < 0 {
        failed = 1
        failure = errno
      } else {
        let h = Checkpoint.header(config)
        let ok = h.withUnsafeBytes { pwriteFully(fd, $0.baseAddress!, 1024, 0) }
        let size = checkpointHeaderBytes + 4 * config.parameterCount
        if !ok || (!target.isDevice && ftruncate(fd, off_t(size)) != 0) { failed = 1; failure = errno }
        close(fd)
      }
    }
    world.broadcast(&failed, count: 1)
    world.broadcast(&failure, count: 1)
    if failed != 0 {
      if world.rank == 0 && !target.isDevice { unlink(tmp) }
      throw EngineError.agreed("cannot write the model to \(requested): \(String(cString: strerror(failure))); choose a writable --save")
    }

    var myFailure: Int32 = 0
    if dpRank == 0 {
      let fd = open(tmp, O_WRONLY)
      if fd < 0 { myFailure = errno } else {
        if !writeSlices(fd: fd, from: paramsMemory, fileBase: checkpointHeaderBytes) { myFailure = errno == 0 ? EIO : errno }
        // a device has nothing to make durable (fsync of /dev/null fails with EINVAL)
        if myFailure == 0 && !target.isDevice && fsync(fd) != 0 { myFailure = errno }
        close(fd)
      }
    }
    var anyFailure = Double(myFailure)
    world.allReduce(&anyFailure, count: 1, .max)
    if anyFailure != 0 {
      if world.rank == 0 && !target.isDevice { unlink(tmp) }
      let reason = String(cString: strerror(Int32(anyFailure)))
      throw EngineError.agreed(target.isDevice
        ? "writing the model to \(requested) failed: \(reason); choose another --save"
        : "writing the model to \(path) failed (\(reason)); the previous \(path) is untouched: free space or choose another --save")
    }
    if world.rank == 0 && !target.isDevice {
      if rename(tmp, path) != 0 { failed = 1; failure = errno }
      syncDirectory(of: path)
    }
    world.broadcast(&failed, count: 1)
    world.broadcast(&failure, count: 1)
    if failed != 0 { throw EngineError.agreed("cannot rename \(tmp) to \(path): \(String(cString: strerror(failure)))") }
  }
}

/// Where `--save PATH` writes the model, decided before training so a bad path costs nothing:
/// - a regular file, or a name that does not exist yet: replaced atomically (written beside it
///   as `PATH.tmp`, then renamed over it);
/// - a symbolic link (or a chain of them): the file it names is replaced that way, and the link
///   keeps naming it (a dangling link's file is created);
/// - a character device such as /dev/null: written through, never replaced;
/// - a directory, FIFO, socket or block device: refused with one line.
public struct ModelFileTarget: Equatable {
  /// The file to replace, or the device to write.
  public let path: String
  public let isDevice: Bool

  public init(_ requested: String) throws {
    var path = requested
    var hops = 0
    while true {
      var st = stat()
      guard lstat(path, &st) == 0 else {
        // nothing there yet: a new file (its directory is checked when it is written)
        self.path = path
        isDevice = false
        return
      }
      switch st.st_mode & S_IFMT {
      case S_IFREG:
        self.path = path
        isDevice = false
        return
      case S_IFLNK:
        hops += 1
        guard hops <= 40, let next = ModelFileTarget.readLink(path) else {
          throw EngineError("--save \(requested): too many symbolic links or an unreadable one; name the file itself")
        }
        // a relative link is relative to the link's own directory
        if next.hasPrefix("/") { path = next } else if let slash = path.lastIndex(of: "/") {
          path = String(path[...slash]) + next
        } else {
          path = next
        }
      case S_IFCHR:
        self.path = path
        isDevice = true
        return
      case S_IFDIR:
        throw EngineError("--save \(requested) is a directory: name a file, e.g. \(requested.hasSuffix("/") ? requested : requested + "/")model.bin")
      default:
        throw EngineError("--save \(requested) is not a regular file or a character device (a FIFO, socket or block device): name a file")
      }
    }
  }

  static func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 4097)
    let n = readlink(path, &buffer, 4096)
    guard n > 0 else { return nil }
    return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}

/// fsyncs the directory holding `path` so a rename is durable.
public func syncDirectory(of path: String) {
  let dir: String
  if let slash = path.lastIndex(of: "/") { dir = slash == path.startIndex ? "/" : String(path[..<slash]) } else { dir = "." }
  let fd = open(dir, O_RDONLY | O_DIRECTORY)
  if fd >= 0 { fsync(fd); close(fd) }
}

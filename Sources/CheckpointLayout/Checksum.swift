// The checkpoint checksum and the check of a checkpoint's files against its manifest: what
// tptrain proves before it resumes and what the supervisor proves before it names the
// checkpoint a restart takes (one rule, here, for both).

import Foundation
import Glibc

/// The checkpoint checksum: 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime
/// 0x100000001b3) taken over 8-byte little-endian words instead of single bytes, so it runs
/// at memory speed; a file's trailing 1–7 bytes are folded in one at a time. Chunks passed to
/// `update` must be multiples of 8 bytes except the last.
public struct FNV1a64: Sendable {
  /// Name recorded in manifests.
  public static let algorithm = Checkpoints.checksumAlgorithm

  /// A checksum as manifests write it: 16 lower-case hex digits.
  public static func hex(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
  }
  public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
  public init() {}

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    let prime: UInt64 = 0x0000_0100_0000_01b3
    var h = value
    let words = bytes.count / 8
    for i in 0..<words {
      h = (h ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) &* prime
    }
    for i in (8 * words)..<bytes.count { h = (h ^ UInt64(bytes[i])) &* prime }
    value = h
  }

  /// Size and checksum of the file at `path`, read in 1 MiB chunks.
  public static func file(_ path: String) throws(ManifestError) -> (bytes: Int, checksum: UInt64) {
    let fd = open(path, O_RDONLY)
    if fd < 0 { throw ManifestError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let chunk = 1 << 20
    let buf = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
    defer { buf.deallocate() }
    var h = FNV1a64()
    var total = 0
    var atEnd = false
    while !atEnd {
      var filled = 0  // fill whole chunks so every chunk but the last is a multiple of 8
      while filled < chunk {
        let n = read(fd, buf + filled, chunk - filled)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw ManifestError("cannot read \(path): \(String(cString: strerror(errno)))") }
        if n == 0 { atEnd = true; break }
        filled += n
      }
      h.update(UnsafeRawBufferPointer(start: buf, count: filled))
      total += filled
    }
    return (total, h.value)
  }
}

extension Checkpoints {
  /// Proves the files of checkpoint `path` the ones `manifest` lists: both files listed, each
  /// present with its recorded size and checksum.
  /// - Throws: `ManifestError` naming the first file that fails and how (incomplete, truncated,
  ///   corrupt).
  public static func verifyFiles(of manifest: CheckpointManifest, at path: String) throws(ManifestError) {
    for name in [modelFile, stateFile] where !manifest.files.contains(where: { $0.name == name }) {
      throw ManifestError("\(manifestFile) does not list \(name) (incomplete checkpoint)")
    }
    for f in manifest.files {
      let filePath = path + "/" + f.name
      var st = stat()
      if stat(filePath, &st) != 0 { throw ManifestError("\(f.name) is missing (incomplete checkpoint)") }
      if f.bytes < 0 { throw ManifestError("\(manifestFile) gives \(f.name) a negative size, \(f.bytes) (damaged)") }
      if Int(st.st_size) != f.bytes {
        throw ManifestError("\(f.name) is \(st.st_size) bytes, manifest says \(f.bytes) (\(Int(st.st_size) < f.bytes ? "truncated" : "damaged"))")
      }
      let (_, sum) = try FNV1a64.file(filePath)
      if FNV1a64.hex(sum) != f.checksum {
        throw ManifestError("\(f.name) checksum \(FNV1a64.hex(sum)) does not match the manifest's \(f.checksum) (corrupt)")
      }
    }
  }

  /// The newest step_* directory of `dir` whose manifest reads, names its step, and whose files
  /// verify (`verifyFiles`), with the newer ones passed over and why (one line each, without
  /// the path): the checkpoint a resume from `dir` takes, and what it skips.
  public static func latestVerified(in dir: String) -> (checkpoint: (step: Int, path: String)?, passedOver: [(path: String, reason: String)]) {
    var passed: [(path: String, reason: String)] = []
    for c in candidates(in: dir) {
      do throws(ManifestError) {
        let m = try CheckpointManifest.read(checkpoint: c.path)
        if m.step != c.step { throw ManifestError("\(manifestFile) says step \(m.step) (damaged)") }
        try verifyFiles(of: m, at: c.path)
        return (c, passed)
      } catch {
        passed.append((c.path, error.message))
      }
    }
    return (nil, passed)
  }
}

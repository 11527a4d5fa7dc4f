// TensorBoard's record framing (TFRecord): each record is
//   u64 length (LE) · u32 masked CRC-32C of those 8 bytes · data · u32 masked CRC-32C of data.
// The reader streams a file in bounded memory and checks both CRCs; a file that ends inside a
// record (a writer still writing, or one killed mid-record) stops before it and can be read on
// later, as it grows.

import Foundation

/// Reads records from one file, from where the previous call stopped.
public final class RecordReader {
  public let path: String
  /// Records longer than this are damage, not data (TensorBoard's own scalars are ~50 bytes).
  public static let maxRecordBytes = 64 << 20
  /// Offset of the next record.
  public private(set) var offset: UInt64 = 0
  /// Why reading stopped for good (a bad CRC or an absurd length), nil while the file is sound.
  public private(set) var problem: String?
  private let handle: FileHandle

  public init(path: String) throws {
    self.path = path
    guard let h = FileHandle(forReadingAtPath: path) else { throw TensorBoardError("cannot open \(path)") }
    handle = h
  }

  deinit { try? handle.close() }

  private func read(_ n: Int, at off: UInt64) -> [UInt8]? {
    do {
      try handle.seek(toOffset: off)
      guard let d = try handle.read(upToCount: n), d.count == n else { return nil }
      return [UInt8](d)
    } catch { return nil }
  }

  /// The next complete record's data, nil at the end of the file (or of its complete records).
  /// Sets `problem` and returns nil for a damaged record; nothing after it is read.
  public func next() -> [UInt8]? {
    guard problem == nil, let head = read(12, at: offset) else { return nil }
    let length = head[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    let headCRC = UInt32(head[8]) | UInt32(head[9]) << 8 | UInt32(head[10]) << 16 | UInt32(head[11]) << 24
    guard CRC32C.maskedChecksum(head[0..<8]) == headCRC else {
      problem = "\(path): bad length checksum of the record at byte \(offset); the rest of the file is skipped"
      return nil
    }
    guard length <= UInt64(Self.maxRecordBytes) else {
      problem = "\(path): record of \(length) bytes at byte \(offset) is too long; the rest of the file is skipped"
      return nil
    }
    guard let body = read(Int(length) + 4, at: offset + 12) else { return nil }  // torn tail: maybe later
    let data = Array(body[0..<Int(length)])
    let t = Int(length)
    let crc = UInt32(body[t]) | UInt32(body[t + 1]) << 8 | UInt32(body[t + 2]) << 16 | UInt32(body[t + 3]) << 24
    guard CRC32C.maskedChecksum(data) == crc else {
      problem = "\(path): bad data checksum of the record at byte \(offset); the rest of the file is skipped"
      return nil
    }
    offset += 12 + length + 4
    return data
  }
}

/// Writes records to one file.
public final class RecordWriter {
  public let path: String
  private let handle: FileHandle
  private var buffer: [UInt8] = []

  /// Creates (or truncates) `path`.
  public init(path: String) throws {
    self.path = path
    guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
      throw TensorBoardError("cannot create \(path)")
    }
    handle = h
  }

  static func littleEndian<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    withUnsafeBytes(of: v.littleEndian) { Array($0) }
  }

  /// Appends one record.
  public func write(_ data: [UInt8]) throws {
    let len = Self.littleEndian(UInt64(data.count))
    buffer += len
    buffer += Self.littleEndian(CRC32C.maskedChecksum(len))
    buffer += data
    buffer += Self.littleEndian(CRC32C.maskedChecksum(data))
    if buffer.count >= 1 << 16 { try flush() }
  }

  public func flush() throws {
    guard !buffer.isEmpty else { return }
    do { try handle.write(contentsOf: buffer) } catch { throw TensorBoardError("cannot write \(path): \(error.localizedDescription)") }
    buffer.removeAll(keepingCapacity: true)
  }

  public func close() throws {
    try flush()
    try? handle.close()
  }
}

/// A TensorBoard file or log-directory problem, one line.
public struct TensorBoardError: Error, CustomStringConvertible, Sendable {
  public let description: String
  public init(_ d: String) { description = d }
}

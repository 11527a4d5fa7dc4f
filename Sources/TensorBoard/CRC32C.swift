// CRC-32C (Castagnoli), the checksum of TensorBoard's record framing, and the mask the
// framing applies to it (TensorFlow's crc32c::Mask).

/// CRC-32C of bytes, table-driven (reflected polynomial 0x82F63B78).
public enum CRC32C {
  static let table: [UInt32] = (0..<256).map { i -> UInt32 in
    var c = UInt32(i)
    for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    return c
  }

  /// The CRC of `bytes`.
  public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    var c: UInt32 = 0xFFFF_FFFF
    table.withUnsafeBufferPointer { t in
      for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    }
    return c ^ 0xFFFF_FFFF
  }

  /// The masked form stored in event files: rotate right by 15, add a constant.
  public static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

  /// Masked CRC of `bytes`.
  public static func maskedChecksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 { masked(checksum(bytes)) }
}

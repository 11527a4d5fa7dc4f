/// Fixed-size log2 latency histogram, usable without allocation (a tuple, not an array).
///
/// Bucket i counts calls with latency in [2^i, 2^(i+1)) microseconds; bucket 0 also holds
/// anything under 1 µs, the last bucket anything above. The telemetry segment stores the
/// buckets as 16 consecutive u32 (docs/TELEMETRY.md).
public struct LatencyHistogram: Sendable, Equatable {
  /// Number of buckets.
  public static let bucketCount = 16
  /// The counts, bucket 0 first. Public so encoders can pair them without a loop.
  public var buckets: (
    UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
    UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32
  ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

  /// Creates an empty histogram.
  public init() {}

  /// Count of bucket `i` (0..<16; outside that range reads 0 and writes are ignored, so
  /// decoders of foreign data cannot trap on an index). Inlinable: the collectives count into
  /// it on the training thread.
  @inlinable
  public subscript(i: Int) -> UInt32 {
    get {
      guard i >= 0 && i < Self.bucketCount else { return 0 }
      return withUnsafeBytes(of: buckets) { $0.load(fromByteOffset: i * 4, as: UInt32.self) }
    }
    set {
      guard i >= 0 && i < Self.bucketCount else { return }
      withUnsafeMutableBytes(of: &buckets) { $0.storeBytes(of: newValue, toByteOffset: i * 4, as: UInt32.self) }
    }
  }

  /// Bucket of a latency of `ns` nanoseconds.
  @inlinable
  static func bucket(forNanoseconds ns: UInt64) -> Int {
    let us = ns / 1000
    if us == 0 { return 0 }
    return min(63 - us.leadingZeroBitCount, bucketCount - 1)
  }

  /// Counts one call of `ns` nanoseconds.
  @inlinable
  public mutating func record(nanoseconds ns: UInt64) { self[Self.bucket(forNanoseconds: ns)] &+= 1 }

  /// Bucket-wise sum (wrapping), e.g. of the tensor- and data-parallel groups' histograms.
  public static func + (a: LatencyHistogram, b: LatencyHistogram) -> LatencyHistogram {
    var s = a
    for i in 0..<bucketCount { s[i] &+= b[i] }
    return s
  }

  /// Equal when every bucket is.
  public static func == (a: LatencyHistogram, b: LatencyHistogram) -> Bool {
    (0..<bucketCount).allSatisfy { a[$0] == b[$0] }
  }
}

import Glibc

/// Wall-clock time as the job's files write it: Unix nanoseconds and ISO 8601 UTC.
public enum WallClock {
  /// Now, as nanoseconds since the Unix epoch (CLOCK_REALTIME).
  public static func nowUnixNs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
  }

  /// ISO 8601 UTC with milliseconds: "2026-12-07T02:33:10.123Z".
  public static func iso8601(unixNs: Int64) -> String {
    var t = time_t(unixNs / 1_000_000_000)
    var parts = tm()
    gmtime_r(&t, &parts)
    let ms = Int((unixNs % 1_000_000_000) / 1_000_000)
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    let millis = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millis)Z"
  }
}

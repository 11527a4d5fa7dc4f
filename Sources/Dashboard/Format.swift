import Foundation

/// Short human formats for numbers, sizes and durations (fixed widths where tables need them).
public enum Format {
  /// "812ms", "3.2s", "4m05s", "2h13m".
  public static func duration(seconds s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "–" }
    if s < 1 { return "\(Int(s * 1000))ms" }
    if s < 60 { return String(format: "%.1fs", s) }
    let t = Int(s)
    if t < 3600 { return String(format: "%dm%02ds", t / 60, t % 60) }
    return String(format: "%dh%02dm", t / 3600, (t / 60) % 60)
  }

  /// Heartbeat age: "0.3s", "12s", "5m".
  public static func age(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "–" }
    if s < 10 { return String(format: "%.1fs", s) }
    if s < 120 { return "\(Int(s))s" }
    if s < 7200 { return "\(Int(s / 60))m" }
    return "\(Int(s / 3600))h"
  }

  /// Milliseconds with adaptive precision: "0.042", "3.41", "41.2", "412".
  public static func ms(_ ns: Double) -> String {
    let v = ns / 1e6
    guard v.isFinite else { return "–" }
    if v < 0.1 { return String(format: "%.3f", v) }
    if v < 10 { return String(format: "%.2f", v) }
    if v < 100 { return String(format: "%.1f", v) }
    return String(format: "%.0f", v)
  }

  /// One significant digit, for a value known only to a factor of 2 (a log2 histogram
  /// bucket's middle): 0.091 → "0.09", 0.18 → "0.2", 0.72 → "0.7", 1.4 → "1", 23 → "20".
  public static func oneDigit(_ v: Double) -> String {
    guard v.isFinite, v > 0 else { return v == 0 ? "0" : "–" }
    let e = floor(log10(v))
    var m = (v / pow(10, e)).rounded()
    var exp = e
    if m >= 10 { m = 1; exp += 1 }
    if exp >= 0 { return String(format: "%.0f", m * pow(10, exp)) }
    return String(format: "%.\(Int(-exp))f", m * pow(10, exp))
  }

  /// "1.2k", "34.5M".
  public static func count(_ v: Double) -> String {
    guard v.isFinite else { return "–" }
    let a = abs(v)
    if a < 1000 { return String(format: a < 10 ? "%.1f" : "%.0f", v) }
    if a < 1e6 { return String(format: "%.1fk", v / 1e3) }
    if a < 1e9 { return String(format: "%.1fM", v / 1e6) }
    return String(format: "%.1fG", v / 1e9)
  }

  /// "512B", "3.4K", "120M", "1.2G" (binary units).
  public static func bytes(_ v: Double) -> String {
    guard v.isFinite, v >= 0 else { return "–" }
    if v < 1024 { return "\(Int(v))B" }
    let units = ["K", "M", "G", "T"]
    var x = v / 1024
    var i = 0
    while x >= 1024 && i < units.count - 1 { x /= 1024; i += 1 }
    return String(format: x < 10 ? "%.1f%@" : "%.0f%@", x, units[i])
  }

  /// Loss-like value: 4 significant digits.
  public static func value(_ v: Double) -> String {
    guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "+Inf" : "-Inf") }
    let a = abs(v)
    if a >= 1000 { return String(format: "%.0f", v) }
    if a >= 100 { return String(format: "%.1f", v) }
    if a >= 10 { return String(format: "%.2f", v) }
    if a >= 0.01 || a == 0 { return String(format: "%.3f", v) }
    return String(format: "%.2e", v)
  }

  /// Pads or clips to exactly `w` columns (right-aligned when `right`); a clipped text ends in
  /// "…" (which an ASCII grid writes as its truncation mark "~").
  public static func fit(_ s: String, _ w: Int, right: Bool = false) -> String {
    let n = s.unicodeScalars.count
    if n == w { return s }
    if n > w {
      // a cut text ends in a mark, so "rows 0–127" cut short never reads as "rows 0"
      guard w > 1 else { return String(String.UnicodeScalarView(s.unicodeScalars.prefix(w))) }
      return String(String.UnicodeScalarView(s.unicodeScalars.prefix(w - 1))) + "…"
    }
    let pad = String(repeating: " ", count: w - n)
    return right ? pad + s : s + pad
  }

  /// Clock time "HH:MM:SS" of a Unix time.
  public static func clock(_ t: Double) -> String {
    guard t > 0 else { return "--:--:--" }
    var tt = time_t(t)
    var tmv = tm()
    localtime_r(&tt, &tmv)
    return String(format: "%02d:%02d:%02d", tmv.tm_hour, tmv.tm_min, tmv.tm_sec)
  }
}

/// The telemetry job names of a supervised job's incarnations, the one rule the supervisor names
/// them by and every reader follows them by: incarnation 0 is the base name; incarnation k ≥ 1 is
/// `<base>.r<k>`, or `<base>.r<k>.<8 hex digits>` when that name was taken (by anything but a
/// dead leftover of the job: another user can create any name in /dev/shm in advance).
public enum IncarnationName {
  /// The usual name of incarnation `k` of `base`.
  public static func name(base: String, incarnation k: Int) -> String { k == 0 ? base : "\(base).r\(k)" }

  /// The name of incarnation `k` of `base` with a suffix nobody can guess (`nonce` random).
  public static func unpredictable(base: String, incarnation k: Int, nonce: UInt32) -> String {
    let hex = String(nonce, radix: 16)
    return name(base: base, incarnation: k) + "." + String(repeating: "0", count: 8 - hex.count) + hex
  }

  /// The incarnation (≥ 1) that `job` names of `base`, in either form; nil when `job` is no
  /// later incarnation of `base`.
  public static func incarnation(of job: String, base: String) -> Int? {
    guard job.hasPrefix(base + ".r") else { return nil }
    let rest = job.dropFirst(base.count + 2)
    let digits = rest.prefix { $0.isASCII && $0.isNumber }
    guard !digits.isEmpty, digits.count <= 9, let k = Int(digits), k > 0, String(k) == digits else { return nil }
    let tail = rest.dropFirst(digits.count)
    guard tail.isEmpty || (tail.count == 9 && tail.first == "." && tail.dropFirst().allSatisfy(\.isHexDigit)) else { return nil }
    return k
  }

  /// The base and incarnation that `job` names: (`job`, 0) unless it is a later incarnation's
  /// name (`<base>.r<k>` or `<base>.r<k>.<hex>`).
  public static func parse(_ job: String) -> (base: String, incarnation: Int) {
    // the last ".r" that leaves a valid incarnation name
    let chars = Array(job)
    var i = chars.count - 2
    while i > 0 {
      if chars[i] == ".", chars[i + 1] == "r" {
        let base = String(chars[..<i])
        if let k = incarnation(of: job, base: base) { return (base, k) }
      }
      i -= 1
    }
    return (job, 0)
  }
}

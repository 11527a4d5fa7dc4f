// Meaning-named style slots. Views say what a cell means (an error, a warm latency, rank 3's
// line); the theme decides how that looks on the current terminal.

/// A theme slot. Gradient slots come in five levels, low to high.
public enum Style: UInt8, CaseIterable, Sendable {
  case normal, dim, accent, border, title, header, ok, warn, error, selection, statusBar
  case chartLine, chartBand, axis
  case rank0, rank1, rank2, rank3, rank4, rank5, rank6, rank7
  case util0, util1, util2, util3, util4
  case mem0, mem1, mem2, mem3, mem4
  case lat0, lat1, lat2, lat3, lat4
  case stack0, stack1, stack2, stack3, stack4

  /// Style for world rank `r`'s series (the palette repeats every eight ranks).
  public static func rank(_ r: Int) -> Style { Style(rawValue: Style.rank0.rawValue + UInt8(((r % 8) + 8) % 8))! }

  /// Utilization gradient level for a fraction 0...1.
  public static func utilization(_ f: Double) -> Style { level(.util0, f) }
  /// Memory gradient level for a fraction 0...1.
  public static func memory(_ f: Double) -> Style { level(.mem0, f) }
  /// Latency gradient level for a fraction 0...1.
  public static func latency(_ f: Double) -> Style { level(.lat0, f) }
  /// Stacked-series style `i` (0...4).
  public static func stack(_ i: Int) -> Style { Style(rawValue: Style.stack0.rawValue + UInt8(min(4, max(0, i))))! }

  private static func level(_ base: Style, _ f: Double) -> Style {
    let v = f.isFinite ? f : 0
    let i = min(4, max(0, Int((v * 5).rounded(.down))))
    return Style(rawValue: base.rawValue + UInt8(i))!
  }

  /// Gradient index 0...4 for a fraction.
  public static func levelIndex(_ f: Double) -> Int {
    let v = f.isFinite ? f : 0
    return min(4, max(0, Int((v * 5).rounded(.down))))
  }
}

// Every non-letter character the views draw, in a UTF-8 set and an ASCII set. The ASCII set is
// chosen when the locale's character set is not UTF-8 (or TERM=dumb).

/// The glyph set views draw with.
public struct Glyphs: Equatable, Sendable {
  public var unicode: Bool
  public var horizontal: Unicode.Scalar
  public var vertical: Unicode.Scalar
  public var topLeft: Unicode.Scalar
  public var topRight: Unicode.Scalar
  public var bottomLeft: Unicode.Scalar
  public var bottomRight: Unicode.Scalar
  /// Bar fill, full cell.
  public var barFull: Unicode.Scalar
  /// Bar background.
  public var barEmpty: Unicode.Scalar
  /// Partial bar cells, eighths 1...7 (index 0 = 1/8).
  public var barEighths: [Unicode.Scalar]
  /// Shades for heat maps, low to high (5 levels).
  public var shades: [Unicode.Scalar]
  /// Stacked-chart fills, one per series, distinguishable without colour.
  public var stackFills: [Unicode.Scalar]
  /// Marks the straggler rank.
  public var straggler: Unicode.Scalar
  /// State dot.
  public var dot: Unicode.Scalar
  /// Selection marker.
  public var pointer: Unicode.Scalar
  public var ellipsis: String
  public var dash: String
  public var times: String

  /// The UTF-8 set.
  public static let utf8 = Glyphs(
    unicode: true, horizontal: "─", vertical: "│", topLeft: "┌", topRight: "┐", bottomLeft: "└",
    bottomRight: "┘", barFull: "█", barEmpty: "·", barEighths: ["▏", "▎", "▍", "▌", "▋", "▊", "▉"],
    shades: [" ", "░", "▒", "▓", "█"], stackFills: ["█", "▓", "▒", "░", "▚"], straggler: "▲",
    dot: "●", pointer: "▶", ellipsis: "…", dash: "–", times: "×")

  /// The ASCII set.
  public static let ascii = Glyphs(
    unicode: false, horizontal: "-", vertical: "|", topLeft: "+", topRight: "+", bottomLeft: "+",
    bottomRight: "+", barFull: "#", barEmpty: ".", barEighths: ["#", "#", "#", "#", "#", "#", "#"],
    shades: [" ", ".", ":", "+", "#"], stackFills: ["#", "=", "+", ":", "%"], straggler: "^",
    dot: "*", pointer: ">", ellipsis: "...", dash: "-", times: "x")

  /// The set for a terminal: UTF-8 when it draws Unicode, else ASCII.
  public static func forTerminal(unicode: Bool) -> Glyphs { unicode ? .utf8 : .ascii }

  /// True when the environment's locale names a UTF-8 character set.
  public static func localeIsUTF8(environment: [String: String]) -> Bool {
    for key in ["LC_ALL", "LC_CTYPE", "LANG"] {
      if let v = environment[key], !v.isEmpty {
        let l = v.lowercased()
        return l.contains("utf-8") || l.contains("utf8")
      }
    }
    return false
  }

  /// The one column that ends a text cut short: "…", or "~" on an ASCII terminal.
  public var truncationMark: Unicode.Scalar { unicode ? "…" : "~" }

  /// The keys that step sideways and up and down, as the help and status lines name them.
  public var leftRight: String { unicode ? "←/→" : "</>" }
  public var upDown: String { unicode ? "↑/↓" : "^/v" }

  /// An ASCII stand-in for a non-ASCII character written into an ASCII-only grid.
  public static func asciiFallback(_ s: Unicode.Scalar) -> Unicode.Scalar {
    switch s {
    case "─", "–", "—", "━": return "-"
    case "│", "┃": return "|"
    case "┌", "┐", "└", "┘", "├", "┤", "┬", "┴", "┼": return "+"
    case "×": return "x"
    case "…": return "~"
    case "●", "•": return "*"
    case "▲": return "^"
    case "▶", "→": return ">"
    case "←": return "<"
    case "↑": return "^"
    case "↓": return "v"
    case "µ": return "u"
    case "·": return "."
    case "░": return "."
    case "▒": return ":"
    case "▓": return "+"
    case "█", "▉", "▊", "▋", "▌", "▍", "▎", "▏": return "#"
    default:
      if (0x2800...0x28FF).contains(s.value) { return s.value == 0x2800 ? " " : "*" }
      return "?"
    }
  }
}

import Foundation

// Themes: meaning-named slots read from commented `key = value` files, resolved to whatever the
// terminal can show (true colour is mapped to 256, 16 or 8 colours, or to attributes only).

/// A colour as a theme file names it.
public enum ThemeColor: Equatable, Sendable {
  /// The terminal's own default colour.
  case terminalDefault
  /// An xterm palette index 0...255.
  case index(Int)
  /// A 24-bit colour.
  case rgb(UInt8, UInt8, UInt8)

  static let names: [String: Int] = [
    "black": 0, "red": 1, "green": 2, "yellow": 3, "blue": 4, "magenta": 5, "cyan": 6, "white": 7,
    "gray": 8, "grey": 8, "bright_black": 8, "bright_red": 9, "bright_green": 10,
    "bright_yellow": 11, "bright_blue": 12, "bright_magenta": 13, "bright_cyan": 14,
    "bright_white": 15,
  ]

  /// Parses `default`, a colour name, a palette index or `#rrggbb`.
  static func parse(_ word: String) -> ThemeColor? {
    let w = word.lowercased()
    if w == "default" || w == "none" { return .terminalDefault }
    if let n = names[w] { return .index(n) }
    if let i = Int(w), (0...255).contains(i) { return .index(i) }
    if w.hasPrefix("#"), w.count == 4, let v = UInt32(w.dropFirst(), radix: 16) {
      // #rgb shorthand: each digit doubled.
      return .rgb(UInt8((v >> 8 & 0xF) * 17), UInt8((v >> 4 & 0xF) * 17), UInt8((v & 0xF) * 17))
    }
    if w.hasPrefix("#"), w.count == 7, let v = UInt32(w.dropFirst(), radix: 16) {
      return .rgb(UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF))
    }
    return nil
  }

  /// The colour's RGB value (xterm's palette for indices), nil for the terminal default.
  var rgbValue: (Int, Int, Int)? {
    switch self {
    case .terminalDefault: return nil
    case .rgb(let r, let g, let b): return (Int(r), Int(g), Int(b))
    case .index(let i): return ThemeColor.xtermRGB(i)
    }
  }

  static let base16: [(Int, Int, Int)] = [
    (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205),
    (229, 229, 229), (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255),
    (255, 0, 255), (0, 255, 255), (255, 255, 255),
  ]

  static func xtermRGB(_ i: Int) -> (Int, Int, Int) {
    if i < 16 { return base16[max(0, i)] }
    if i < 232 {
      let v = i - 16
      let steps = [0, 95, 135, 175, 215, 255]
      return (steps[v / 36], steps[(v / 6) % 6], steps[v % 6])
    }
    let g = 8 + (min(i, 255) - 232) * 10
    return (g, g, g)
  }

  /// The palette index to use on a terminal with `colors` colours; -1 means terminal default.
  public func resolved(colors: Int) -> Int {
    if case .terminalDefault = self { return -1 }
    if case .index(let i) = self, i < colors { return i }
    guard let (r, g, b) = rgbValue else { return -1 }
    if colors >= 256 {
      // Nearest of the 6×6×6 cube and the grey ramp.
      func q(_ v: Int) -> Int { v < 48 ? 0 : v < 115 ? 1 : (v - 35) / 40 }
      let cube = 16 + 36 * q(r) + 6 * q(g) + q(b)
      let grey = min(23, max(0, (((r + g + b) / 3) - 3) / 10))
      let cands = [cube, 232 + grey]
      return cands.min { ThemeColor.distance(ThemeColor.xtermRGB($0), (r, g, b)) < ThemeColor.distance(ThemeColor.xtermRGB($1), (r, g, b)) }!
    }
    let n = colors >= 16 ? 16 : 8
    return (0..<n).min { ThemeColor.distance(ThemeColor.base16[$0], (r, g, b)) < ThemeColor.distance(ThemeColor.base16[$1], (r, g, b)) }!
  }

  static func distance(_ a: (Int, Int, Int), _ b: (Int, Int, Int)) -> Int {
    let dr = a.0 - b.0, dg = a.1 - b.1, db = a.2 - b.2
    return 3 * dr * dr + 4 * dg * dg + 2 * db * db
  }
}

/// Text attributes a slot may add.
public struct TextAttributes: OptionSet, Sendable, Hashable {
  public let rawValue: UInt8
  public init(rawValue: UInt8) { self.rawValue = rawValue }
  public static let bold = TextAttributes(rawValue: 1)
  public static let dim = TextAttributes(rawValue: 2)
  public static let reverse = TextAttributes(rawValue: 4)
  public static let underline = TextAttributes(rawValue: 8)
}

/// How one slot looks.
public struct SlotLook: Equatable, Sendable {
  public var foreground: ThemeColor
  public var background: ThemeColor
  public var attributes: TextAttributes
  public init(foreground: ThemeColor = .terminalDefault, background: ThemeColor = .terminalDefault,
              attributes: TextAttributes = []) {
    self.foreground = foreground
    self.background = background
    self.attributes = attributes
  }
}

/// A theme file's problem, with where it is.
public struct ThemeError: Error, CustomStringConvertible, Equatable {
  public var file: String
  public var line: Int
  public var message: String
  public var description: String { "\(file):\(line): \(message)" }
}

/// A parsed theme: a look for every slot.
public struct Theme: Equatable, Sendable {
  /// Theme name (file name without `.theme`).
  public var name: String
  /// One line from the file's `description` key.
  public var summary: String
  /// Resolved look per slot, indexed by `Style.rawValue`.
  public var looks: [SlotLook]
  /// True when the theme asks for no colours at all (attributes only).
  public var monochrome: Bool

  /// The look of a slot.
  public func look(_ s: Style) -> SlotLook { looks[Int(s.rawValue)] }

  /// Keys a theme file may set, and the slots each one styles.
  static let singleKeys: [String: [Style]] = [
    "foreground": [.normal], "dim": [.dim], "accent": [.accent], "border": [.border],
    "title": [.title], "header": [.header], "ok": [.ok], "warn": [.warn], "error": [.error],
    "selection": [.selection], "status_bar": [.statusBar], "chart_line": [.chartLine],
    "chart_band": [.chartBand], "axis": [.axis],
  ]
  static let listKeys: [String: (first: Style, count: Int)] = [
    "rank_palette": (.rank0, 8), "utilization_gradient": (.util0, 5),
    "memory_gradient": (.mem0, 5), "latency_gradient": (.lat0, 5), "stack_palette": (.stack0, 5),
  ]

  /// Attributes used for each slot when colours are off (NO_COLOR, TERM=dumb, mono terminals),
  /// so meaning survives without colour.
  static func monoFallback(_ s: Style) -> TextAttributes {
    switch s {
    case .title, .header, .error, .accent: return .bold
    case .selection, .statusBar: return .reverse
    case .warn: return .underline
    case .dim, .axis, .chartBand: return .dim
    default: return []
    }
  }

  /// Parses theme text. `file` is used in error messages.
  public static func parse(_ text: String, name: String, file: String) throws -> Theme {
    var looks = Array(repeating: SlotLook(), count: Style.allCases.count)
    var set = Array(repeating: false, count: Style.allCases.count)
    var background = ThemeColor.terminalDefault
    var summary = ""
    var mono = false
    var lineNo = 0
    for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
      lineNo += 1
      let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
      guard let eq = line.firstIndex(of: "=") else {
        throw ThemeError(file: file, line: lineNo, message: "expected `key = value`, got `\(line)`")
      }
      let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
      var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
      // Inline comments start with "# " ('#' then a space); colour values never do.
      if let c = value.range(of: "# ") { value = String(value[..<c.lowerBound]).trimmingCharacters(in: .whitespaces) }
      if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 { value = String(value.dropFirst().dropLast()) }
      func fail(_ m: String) -> ThemeError { ThemeError(file: file, line: lineNo, message: m) }
      switch key {
      case "description":
        summary = value
      case "monochrome":
        guard let b = ["true": true, "yes": true, "false": false, "no": false][value.lowercased()] else {
          throw fail("monochrome must be true or false, got `\(value)`")
        }
        mono = b
      case "background":
        guard let c = ThemeColor.parse(value) else { throw fail("unknown colour `\(value)` for background") }
        background = c
      default:
        if let slots = singleKeys[key] {
          let look = try parseLook(value, fail: fail)
          for s in slots { looks[Int(s.rawValue)] = look; set[Int(s.rawValue)] = true }
        } else if let (first, count) = listKeys[key] {
          let items = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
          guard !items.isEmpty, items.count <= count else {
            throw fail("\(key) takes 1 to \(count) comma-separated colours, got \(items.count)")
          }
          let parsed = try items.map { try parseLook($0, fail: fail) }
          for i in 0..<count {
            // Short lists are stretched over the slots (a 3-colour gradient covers 5 levels).
            let j = items.count == 1 ? 0 : (count == 8 ? i % items.count : i * (items.count - 1) / (count - 1))
            looks[Int(first.rawValue) + i] = parsed[j]
            set[Int(first.rawValue) + i] = true
          }
        } else {
          throw fail("unknown key `\(key)`")
        }
      }
    }
    // Unset slots inherit the foreground; every default background becomes the theme's background.
    let fg = looks[Int(Style.normal.rawValue)]
    for i in 0..<looks.count {
      if !set[i] { looks[i].foreground = fg.foreground; looks[i].attributes.formUnion(Theme.monoFallback(Style(rawValue: UInt8(i))!)) }
      if looks[i].background == .terminalDefault { looks[i].background = background }
    }
    return Theme(name: name, summary: summary, looks: looks, monochrome: mono)
  }

  private static func parseLook(_ value: String, fail: (String) -> ThemeError) throws -> SlotLook {
    var look = SlotLook()
    let words = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    var i = 0
    var sawColour = false
    while i < words.count {
      let w = words[i].lowercased()
      switch w {
      case "bold": look.attributes.insert(.bold)
      case "dim": look.attributes.insert(.dim)
      case "reverse": look.attributes.insert(.reverse)
      case "underline": look.attributes.insert(.underline)
      case "on":
        guard i + 1 < words.count, let c = ThemeColor.parse(words[i + 1]) else {
          throw fail("`on` must be followed by a colour")
        }
        look.background = c
        i += 1
      default:
        guard !sawColour, let c = ThemeColor.parse(w) else {
          throw fail("unknown colour or attribute `\(words[i])`")
        }
        look.foreground = c
        sawColour = true
      }
      i += 1
    }
    return look
  }

  /// The compiled-in default theme (the same text as themes/default.theme).
  public static let builtIn: Theme = {
    // The built-in text is tested to parse; a failure here is a programming error.
    (try? Theme.parse(builtInText, name: "default", file: "<built-in>"))
      ?? Theme(name: "default", summary: "", looks: Array(repeating: SlotLook(), count: Style.allCases.count), monochrome: true)
  }()

  /// Text of the compiled-in default theme.
  public static let builtInText = """
    # tptop theme: default (dark)
    #
    # Keys (each value: COLOUR [on COLOUR] [bold] [dim] [reverse] [underline]):
    #   foreground, background, dim, accent, border, title, header, ok, warn, error,
    #   selection, status_bar, chart_line, chart_band, axis
    # Lists (comma-separated colours, low to high):
    #   rank_palette (up to 8), utilization_gradient, memory_gradient, latency_gradient,
    #   stack_palette (up to 5 each)
    # Colours: default, a name (black red green yellow blue magenta cyan white, bright_…, gray),
    # a palette index 0-255, or #rrggbb (mapped down on 256/16/8-colour terminals).
    # Also: description = one line shown when cycling themes; monochrome = true (attributes only).
    # Unset slots use the foreground colour. NO_COLOR or TERM=dumb turn colours off in any theme.
    description = Dark background, cool accents
    foreground = #d0d0d0
    background = default
    dim = #808080
    accent = #5fafff bold
    border = #4e4e4e
    title = #87d7ff bold
    header = #ffffff on #1c3a5a bold
    ok = #5fd75f
    warn = #ffd75f bold
    error = #ff5f5f bold
    selection = #000000 on #5fafff
    status_bar = #d0d0d0 on #303030
    chart_line = #5fd7ff bold
    chart_band = #3a6a8a
    axis = #808080
    rank_palette = #5fd7ff, #ffaf5f, #af87ff, #87d75f, #ff87af, #d7d75f, #5fafaf, #d7afff
    utilization_gradient = #5f5f87, #5f87af, #5fafd7, #87d7af, #afff87
    memory_gradient = #5f875f, #87af5f, #afaf5f, #d7af5f, #ff875f
    latency_gradient = #3a3a5a, #5f5f87, #875faf, #d75f87, #ff5f5f
    stack_palette = #5fafff, #ffaf5f, #af87ff, #87d75f, #808080
    """
}

import Foundation

// Chart primitives drawn into a CellGrid: a dot canvas (braille 2×4 dots per cell, or ASCII with
// 1×3 sub-rows), horizontal bars with eighth-cell precision, and heat-map cells.

/// A dot canvas over a rectangle. Each cell keeps the highest-priority style drawn into it.
public struct DotCanvas {
  public let rect: Rect
  public let unicode: Bool
  /// Dots per cell horizontally and vertically.
  public let xRes: Int
  public let yRes: Int
  private var bits: [UInt8]
  private var styles: [Style]
  private var priority: [UInt8]

  /// Creates an empty canvas over `rect`.
  public init(rect: Rect, unicode: Bool) {
    self.rect = rect
    self.unicode = unicode
    xRes = unicode ? 2 : 1
    yRes = unicode ? 4 : 3
    bits = Array(repeating: 0, count: rect.width * rect.height)
    styles = Array(repeating: .normal, count: rect.width * rect.height)
    priority = Array(repeating: 0, count: rect.width * rect.height)
  }

  /// Width and height in dots.
  public var dotWidth: Int { rect.width * xRes }
  public var dotHeight: Int { rect.height * yRes }

  private static let brailleBits: [[UInt8]] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]]

  /// Sets one dot; (0, 0) is the top-left dot.
  public mutating func set(_ x: Int, _ y: Int, style: Style, priority p: UInt8 = 1) {
    guard x >= 0, y >= 0, x < dotWidth, y < dotHeight else { return }
    let i = (y / yRes) * rect.width + x / xRes
    if unicode { bits[i] |= DotCanvas.brailleBits[x % 2][y % 4] } else { bits[i] |= UInt8(1 << (y % 3)) }
    if p >= priority[i] { priority[i] = p; styles[i] = style }
  }

  /// Draws a line between two dots.
  public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, style: Style, priority p: UInt8 = 1) {
    var x = x0, y = y0
    let dx = abs(x1 - x0), dy = -abs(y1 - y0)
    let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
    var err = dx + dy
    var guardCount = 0
    while guardCount < 100_000 {
      guardCount += 1
      set(x, y, style: style, priority: p)
      if x == x1 && y == y1 { break }
      let e2 = 2 * err
      if e2 >= dy { err += dy; x += sx }
      if e2 <= dx { err += dx; y += sy }
    }
  }

  /// Fills the dots of column `x` between rows `y0` and `y1` inclusive.
  public mutating func vspan(_ x: Int, _ y0: Int, _ y1: Int, style: Style, priority p: UInt8 = 0) {
    for y in min(y0, y1)...max(y0, y1) { set(x, y, style: style, priority: p) }
  }

  /// Writes the canvas into the grid (empty cells are left untouched).
  public func draw(into g: inout CellGrid) {
    for cy in 0..<rect.height {
      for cx in 0..<rect.width {
        let i = cy * rect.width + cx
        let b = bits[i]
        guard b != 0 else { continue }
        let ch: Unicode.Scalar
        if unicode {
          ch = Unicode.Scalar(0x2800 + UInt32(b))!
        } else {
          switch b { case 1: ch = "'"; case 2: ch = "-"; case 4: ch = "."; default: ch = priority[i] > 0 ? "*" : ":" }
        }
        g[rect.x + cx, rect.y + cy] = Cell(ch, styles[i])
      }
    }
  }
}

/// Draws a horizontal bar of `fraction` (0...1) across `width` cells at (x, y).
public func drawBar(_ g: inout CellGrid, x: Int, y: Int, width: Int, fraction: Double, style: Style,
                    empty: Style = .dim) {
  guard width > 0 else { return }
  let glyphs = g.glyphs
  let f = fraction.isFinite ? min(1, max(0, fraction)) : 0
  let eighths = Int((f * Double(width) * 8).rounded())
  for i in 0..<width {
    let filled = eighths - i * 8
    if filled >= 8 { g[x + i, y] = Cell(glyphs.barFull, style) }
    else if filled > 0 { g[x + i, y] = Cell(glyphs.barEighths[filled - 1], style) }
    else { g[x + i, y] = Cell(glyphs.barEmpty, empty) }
  }
}

/// A line chart with y labels on the left and the x range underneath.
public struct LineChart {
  /// One series to draw.
  public struct Series {
    public var points: [(Double, Double)]
    public var style: Style
    public init(points: [(Double, Double)], style: Style) { self.points = points; self.style = style }
  }

  public var lines: [Series] = []
  /// Optional band: per x, (low, high).
  public var band: [(Double, Double, Double)] = []
  public var bandStyle: Style = .chartBand
  public var logY = false
  /// A step to mark with a vertical line (the cursor), when it is inside the drawn range.
  public var cursorX: Double?
  /// What the x axis counts, written at its left end (at most 7 columns; the title says
  /// whether y is logarithmic).
  public var xLabel = "step"

  public init() {}

  /// Round tick positions between `lo` and `hi` (1, 2 or 5 × 10^k apart, whole steps), as
  /// many as fit `width` columns with labels at least 8 columns apart.
  public static func ticks(_ lo: Double, _ hi: Double, width: Int) -> [Double] {
    guard hi > lo, width > 0 else { return [lo] }
    let most = max(2, width / 8)
    let raw = (hi - lo) / Double(most)
    let magnitude = pow(10, floor(log10(max(raw, 1))))
    var stepSize = magnitude
    for f in [1.0, 2, 5, 10] where f * magnitude >= raw { stepSize = f * magnitude; break }
    stepSize = max(1, stepSize)
    var out: [Double] = []
    var t = (lo / stepSize).rounded(.up) * stepSize
    while t <= hi + 1e-9 && out.count < 1000 { out.append(t); t += stepSize }
    return out
  }

  private func ty(_ v: Double) -> Double { logY ? log10(max(v, 1e-12)) : v }

  /// Draws into `r` (labels included). Returns false when there was nothing to draw.
  @discardableResult
  public func draw(into g: inout CellGrid, in r: Rect) -> Bool {
    let all = lines.flatMap { $0.points } + band.flatMap { [($0.0, $0.1), ($0.0, $0.2)] }
    let finite = all.filter { $0.0.isFinite && $0.1.isFinite && (!logY || $0.1 > 0) }
    guard r.width > 12, r.height > 2, finite.count > 0 else {
      g.put("waiting for steps\(g.glyphs.ellipsis)", x: r.x + max(0, r.width / 2 - 9), y: r.y + r.height / 2, style: .dim, maxWidth: r.width)
      return false
    }
    var x0 = finite.map(\.0).min()!, x1 = finite.map(\.0).max()!
    var y0 = finite.map { ty($0.1) }.min()!, y1 = finite.map { ty($0.1) }.max()!
    if x1 - x0 < 1 { x1 = x0 + 1 }
    if y1 - y0 <= 1e-9 * max(1e-12, abs(y0), abs(y1)) {
      // a flat series (a constant learning rate): ±10 % of its value around it, not ±0.5
      let d = max(abs(y0), abs(y1)) > 0 ? max(abs(y0), abs(y1)) * 0.1 : 0.5
      y0 -= d
      y1 += d
    }
    let pad = (y1 - y0) * 0.05
    y0 -= pad; y1 += pad
    if !logY && y0 < 0 && finite.allSatisfy({ $0.1 >= 0 }) { y0 = 0 }
    let labelW = 7
    let plot = Rect(x: r.x + labelW + 1, y: r.y, width: r.width - labelW - 1, height: r.height - 1)
    // y axis: the top, middle and bottom values, each marked on the axis line
    func label(_ v: Double) -> String {
      let x = logY ? pow(10, v) : v
      // small values (a learning rate) as 3.0e-04, which fits the label column whole
      let text = x != 0 && abs(x) < 0.01 ? String(format: "%.1e", x) : Format.value(x)
      return Format.fit(text, labelW, right: true)
    }
    for yy in plot.y..<plot.maxY { g[r.x + labelW, yy] = Cell(g.glyphs.vertical, .axis) }
    var yLabels = [(plot.y, y1), (plot.maxY - 1, y0)]
    if plot.height > 4 { yLabels.append((plot.y + plot.height / 2, (y0 + y1) / 2)) }
    for (yy, v) in yLabels {
      g.put(label(v), x: r.x, y: yy, style: .axis)
      g[r.x + labelW, yy] = Cell(g.glyphs.unicode ? "┤" : "+", .axis)
    }
    // x axis: step ticks at round intervals, each label under its tick
    g.fill(Rect(x: r.x, y: plot.maxY, width: r.width, height: 1), Cell(" ", .axis))
    g.put(Format.fit(xLabel, labelW), x: r.x, y: plot.maxY, style: .axis)
    func column(_ x: Double) -> Int { plot.x + Int(((x - x0) / (x1 - x0) * Double(plot.width - 1)).rounded()) }
    var nextFree = plot.x
    for t in LineChart.ticks(x0, x1, width: plot.width) {
      let text = String(Int(t))
      let c = column(t)
      let start = min(max(plot.x, c - text.count / 2), plot.maxX - text.count)
      guard start >= nextFree else { continue }
      g.put(text, x: start, y: plot.maxY, style: .axis)
      nextFree = start + text.count + 2
    }
    var canvas = DotCanvas(rect: plot, unicode: g.glyphs.unicode)
    let w = canvas.dotWidth, h = canvas.dotHeight
    func px(_ x: Double) -> Int { Int(((x - x0) / (x1 - x0) * Double(w - 1)).rounded()) }
    func py(_ y: Double) -> Int {
      let v = ty(y)
      guard v.isFinite else { return 0 }
      return min(h - 1, max(0, Int(((y1 - v) / (y1 - y0) * Double(h - 1)).rounded())))
    }
    if let c = cursorX, c >= x0, c <= x1 {
      let cx = px(c)
      canvas.vspan(cx, 0, h - 1, style: .accent, priority: 1)
    }
    for b in band where b.0.isFinite && b.1.isFinite && b.2.isFinite {
      canvas.vspan(px(b.0), py(b.1), py(b.2), style: bandStyle, priority: 0)
    }
    for s in lines {
      // One dot per dot-column: many steps per column are averaged so long runs stay legible.
      var prev: (Int, Int)?
      var col = -1, sum = 0.0, n = 0
      func flush() {
        guard n > 0 else { return }
        let y = py(sum / Double(n))
        if let p = prev { canvas.line(p.0, p.1, col, y, style: s.style, priority: 2) } else { canvas.set(col, y, style: s.style, priority: 2) }
        prev = (col, y)
      }
      for (x, y) in s.points where x.isFinite && y.isFinite && (!logY || y > 0) {
        let c = px(x)
        if c != col { flush(); col = c; sum = 0; n = 0 }
        sum += y; n += 1
      }
      flush()
    }
    canvas.draw(into: &g)
    return true
  }
}

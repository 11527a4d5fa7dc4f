// The off-screen frame: every view renders into a grid of (character, style slot) cells. Backends
// only ever see grids, and compare them to the previous frame to write what changed.

/// One screen cell: a single-width character and the theme slot that styles it.
public struct Cell: Equatable, Sendable {
  /// The character (always single-width; views never emit wide characters).
  public var scalar: Unicode.Scalar
  /// The theme slot of the cell.
  public var style: Style

  /// Creates a cell.
  public init(_ scalar: Unicode.Scalar = " ", _ style: Style = .normal) {
    self.scalar = scalar
    self.style = style
  }

  /// A blank cell in the normal style.
  public static let blank = Cell()
}

/// A rectangle in grid coordinates.
public struct Rect: Equatable, Sendable, CustomStringConvertible {
  public var x: Int
  public var y: Int
  public var width: Int
  public var height: Int

  /// Creates a rectangle; negative sizes become empty.
  public init(x: Int, y: Int, width: Int, height: Int) {
    self.x = x
    self.y = y
    self.width = max(0, width)
    self.height = max(0, height)
  }

  public var maxX: Int { x + width }
  public var maxY: Int { y + height }
  public var isEmpty: Bool { width == 0 || height == 0 }

  /// The rectangle shrunk by `n` cells on every side.
  public func inset(_ n: Int) -> Rect { Rect(x: x + n, y: y + n, width: width - 2 * n, height: height - 2 * n) }

  /// True when the two rectangles share at least one cell.
  public func intersects(_ o: Rect) -> Bool {
    !isEmpty && !o.isEmpty && x < o.maxX && o.x < maxX && y < o.maxY && o.y < maxY
  }

  /// True when `o` lies entirely inside this rectangle.
  public func contains(_ o: Rect) -> Bool {
    o.x >= x && o.y >= y && o.maxX <= maxX && o.maxY <= maxY
  }

  /// Splits off the top `h` rows: (top, rest).
  public func splitTop(_ h: Int) -> (Rect, Rect) {
    let h = min(max(0, h), height)
    return (Rect(x: x, y: y, width: width, height: h), Rect(x: x, y: y + h, width: width, height: height - h))
  }

  /// Splits off the left `w` columns: (left, rest).
  public func splitLeft(_ w: Int) -> (Rect, Rect) {
    let w = min(max(0, w), width)
    return (Rect(x: x, y: y, width: w, height: height), Rect(x: x + w, y: y, width: width - w, height: height))
  }

  public var description: String { "(\(x),\(y) \(width)×\(height))" }
}

/// A width × height frame of cells. Drawing outside the grid (or outside a clip) is ignored.
public struct CellGrid: Equatable, Sendable {
  public private(set) var width: Int
  public private(set) var height: Int
  /// Row-major cells.
  public private(set) var cells: [Cell]
  /// The glyph set the frame is drawn with; with the ASCII set, every non-ASCII character is
  /// replaced by an ASCII look-alike as it is written.
  public let glyphs: Glyphs
  /// Whether only ASCII reaches the grid.
  public var asciiOnly: Bool { !glyphs.unicode }
  /// The named panes laid out on this grid, in drawing order (tests check that they do not overlap).
  public private(set) var panes: [Pane] = []

  /// A named region of the frame that one view owns.
  public struct Pane: Equatable, Sendable {
    public var name: String
    public var rect: Rect
  }

  /// Creates a blank grid.
  public init(width: Int, height: Int, glyphs: Glyphs = .utf8) {
    self.width = max(0, width)
    self.height = max(0, height)
    self.glyphs = glyphs
    cells = Array(repeating: .blank, count: self.width * self.height)
  }

  /// Records that `rect` is the pane called `name`.
  public mutating func markPane(_ name: String, _ rect: Rect) { panes.append(Pane(name: name, rect: rect)) }

  /// Records several panes at once, as (name, rectangle) pairs.
  public mutating func markPanes(_ named: (String, Rect)...) {
    for (name, rect) in named { markPane(name, rect) }
  }

  /// The rectangle of the first pane called `name`.
  public func pane(_ name: String) -> Rect? { panes.first { $0.name == name }?.rect }

  /// The whole grid as a rectangle.
  public var bounds: Rect { Rect(x: 0, y: 0, width: width, height: height) }

  /// Reads a cell; blank outside the grid.
  public subscript(x: Int, y: Int) -> Cell {
    get { x >= 0 && y >= 0 && x < width && y < height ? cells[y * width + x] : .blank }
    set {
      guard x >= 0, y >= 0, x < width, y < height else { return }
      var c = newValue
      if asciiOnly && c.scalar.value > 0x7E { c.scalar = Glyphs.asciiFallback(c.scalar) }
      cells[y * width + x] = c
    }
  }

  /// Fills a rectangle with one cell.
  public mutating func fill(_ r: Rect, _ cell: Cell = .blank) {
    let x0 = max(0, r.x), x1 = min(width, r.maxX)
    let y0 = max(0, r.y), y1 = min(height, r.maxY)
    guard x0 < x1, y0 < y1 else { return }
    for y in y0..<y1 { for x in x0..<x1 { self[x, y] = cell } }
  }

  /// Writes `text` at (x, y), clipped to `maxWidth` columns and to the grid; a clipped text ends in
  /// "…" ("~" on ASCII terminals) unless only blanks were cut. Returns the columns used.
  @discardableResult
  public mutating func put(_ text: String, x: Int, y: Int, style: Style = .normal, maxWidth: Int = Int.max) -> Int {
    guard y >= 0, y < height else { return 0 }
    var col = x
    let limit = min(width, maxWidth == Int.max ? Int.max : x + max(0, maxWidth))
    let scalars = text.unicodeScalars
    var i = scalars.startIndex
    while i < scalars.endIndex {
      let s = scalars[i]
      if col >= limit {
        // clipped: the last cell shows a mark when anything but blanks was cut off
        if col - 1 >= max(x, 0), scalars[i...].contains(where: { $0 != " " }) {
          self[col - 1, y] = Cell(glyphs.truncationMark, style)
        }
        break
      }
      i = scalars.index(after: i)
      if s.properties.generalCategory == .nonspacingMark { continue }
      if col >= 0 { self[col, y] = Cell(s.value < 0x20 ? " " : s, style) }
      col += 1
    }
    return max(0, col - x)
  }

  /// Writes `text` clipped to `r`'s row `row`, padded with blanks to the rectangle's width.
  public mutating func putLine(_ text: String, in r: Rect, row: Int, style: Style = .normal) {
    guard row >= 0, row < r.height else { return }
    let used = put(text, x: r.x, y: r.y + row, style: style, maxWidth: r.width)
    if used < r.width { fill(Rect(x: r.x + used, y: r.y + row, width: r.width - used, height: 1), Cell(" ", style)) }
  }

  /// Draws a single-line box around `r` with an optional title in the top border.
  public mutating func box(_ r: Rect, title: String = "", style: Style = .border, titleStyle: Style = .title) {
    guard r.width >= 2, r.height >= 2 else { return }
    let g = glyphs
    for x in r.x + 1..<r.maxX - 1 {
      self[x, r.y] = Cell(g.horizontal, style)
      self[x, r.maxY - 1] = Cell(g.horizontal, style)
    }
    for y in r.y + 1..<r.maxY - 1 {
      self[r.x, y] = Cell(g.vertical, style)
      self[r.maxX - 1, y] = Cell(g.vertical, style)
    }
    self[r.x, r.y] = Cell(g.topLeft, style)
    self[r.maxX - 1, r.y] = Cell(g.topRight, style)
    self[r.x, r.maxY - 1] = Cell(g.bottomLeft, style)
    self[r.maxX - 1, r.maxY - 1] = Cell(g.bottomRight, style)
    if !title.isEmpty && r.width > 4 {
      put(" \(title) ", x: r.x + 1, y: r.y, style: titleStyle, maxWidth: r.width - 2)
    }
  }

  /// The text of row `y` (for tests and plain-text output), trailing blanks removed.
  public func rowText(_ y: Int) -> String {
    guard y >= 0, y < height else { return "" }
    var s = String.UnicodeScalarView()
    for x in 0..<width { s.append(cells[y * width + x].scalar) }
    var out = String(s)
    while out.last == " " { out.removeLast() }
    return out
  }

  /// The whole grid as text, one line per row.
  public var text: String { (0..<height).map(rowText).joined(separator: "\n") }
}

/// A maximal run of changed cells on one row that share a style.
public struct CellRun: Equatable, Sendable {
  public var x: Int
  public var y: Int
  public var style: Style
  public var scalars: [Unicode.Scalar]
}

extension CellGrid {
  /// The runs of cells that differ from `previous` (everything when sizes differ), grouped by row
  /// and style so a backend can write each run with one call.
  public func changedRuns(since previous: CellGrid?) -> [CellRun] {
    let full = previous == nil || previous!.width != width || previous!.height != height
    var runs: [CellRun] = []
    for y in 0..<height {
      var x = 0
      let base = y * width
      while x < width {
        let c = cells[base + x]
        if !full && previous!.cells[base + x] == c { x += 1; continue }
        var run = CellRun(x: x, y: y, style: c.style, scalars: [c.scalar])
        x += 1
        while x < width {
          let n = cells[base + x]
          if n.style != run.style { break }
          if !full && previous!.cells[base + x] == n {
            // Bridge short unchanged gaps of the same style: one call beats two cursor moves.
            var k = x
            while k < width && k < x + 4 && previous!.cells[base + k] == cells[base + k]
              && cells[base + k].style == run.style { k += 1 }
            if k < width && k < x + 4 && cells[base + k].style == run.style
              && previous!.cells[base + k] != cells[base + k] {
              while x < k { run.scalars.append(cells[base + x].scalar); x += 1 }
              continue
            }
            break
          }
          run.scalars.append(n.scalar)
          x += 1
        }
        runs.append(run)
      }
    }
    return runs
  }
}

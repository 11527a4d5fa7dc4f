/// The `?` overlay listing every key.
enum HelpView {
  static let keys: [(String, String)] = [
    ("1 2 3 4 5", "Overview, Rank, Comm, Shards, Events"),
    ("Tab / S-Tab", "next / previous view"),
    ("\u{2190} \u{2192}", "previous / next rank (Rank, Comm, Overview)"),
    ("\u{2191} \u{2193} PgUp PgDn", "select tensor (Shards), scroll (Events, tables)"),
    ("s", "cycle loss smoothing: off, EMA 0.6, 0.9, 0.99"),
    ("l", "toggle log-scale loss axis"),
    ("m", "median + min\u{2013}max band / one line per rank"),
    ("n", "group the rank table by node"),
    ("[ ] { } Esc", "chart cursor: [ ] a step back / on, { } ten, Esc off (in a stored run a sample, not a step)"),
    ("+ -", "zoom the charts in / out around the cursor"),
    ("p / space", "pause or resume the whole job at the next step"),
    ("c", "save a checkpoint at the next step"),
    ("S", "stop the job for good (asks to confirm)"),
    ("t", "cycle themes"),
    ("?", "this help (any key closes it)"),
    ("q", "detach (the job keeps running)"),
  ]

  /// The keys this job takes: an ended job or a stored run has no p, c or S, and q quits.
  static func keys(_ m: DashboardModel) -> [(String, String)] {
    if Renderer.offersControl(m) { return keys }
    return keys.filter { !["p / space", "c", "S"].contains($0.0) }.map { $0.0 == "q" ? ("q", "quit") : $0 }
  }

  /// Lines of `text` of at most `width` columns, broken between words (a word longer than a
  /// line is cut).
  static func wrap(_ text: String, _ width: Int) -> [String] {
    guard width > 0 else { return [] }
    var lines: [String] = [], line = ""
    for word in text.split(separator: " ") {
      if line.isEmpty { line = String(word.prefix(width)) } else if line.count + 1 + word.count <= width { line += " " + word } else {
        lines.append(line)
        line = String(word.prefix(width))
      }
    }
    if !line.isEmpty || lines.isEmpty { lines.append(line) }
    return lines
  }

  static func draw(_ g: inout CellGrid, _ m: DashboardModel, _ body: Rect) {
    let keys = Self.keys(m)
    // the key column as wide as its longest key; the box as wide as the longest line (or the
    // screen), a description that does not fit continuing on the lines under it
    let keyWidth = (keys.map { $0.0.count }.max() ?? 0) + 2
    let w = max(min(body.width - 2, keyWidth + (keys.map { $0.1.count }.max() ?? 0) + 4), min(body.width, 24))
    let textWidth = max(w - 4 - keyWidth, 8)
    var rows: [(key: String, text: String)] = []
    for (k, d) in keys {
      for (i, line) in wrap(d, textWidth).enumerated() { rows.append((i == 0 ? k : "", line)) }
    }
    // too short a screen for the wrapped lines: one line a key, the longer ones cut with a mark
    if rows.count + 4 > body.height { rows = keys.map { ($0.0, $0.1) } }
    let h = min(body.height, rows.count + 4)
    let box = Rect(x: body.x + (body.width - w) / 2, y: body.y + max(0, (body.height - h) / 2), width: w, height: h)
    g.markPane("help", box)
    g.fill(box, Cell(" ", .normal))
    g.box(box, title: "keys" + (m.state.readonly ? " (read-only: p, c, S disabled)" : ""), style: .accent)
    let inner = box.inset(1)
    // a list cut at the bottom says so on its last line
    let room = max(inner.height - 1, 0)
    if rows.count > room && room > 0 {
      rows = Array(rows.prefix(room - 1)) + [(g.glyphs.ellipsis, "\(rows.count - room + 1) more lines: a taller terminal shows them")]
    }
    for (i, row) in rows.prefix(room).enumerated() {
      let y = inner.y + 1 + i
      g.put(Format.fit(row.key, keyWidth), x: inner.x + 1, y: y, style: .accent)
      g.put(row.text, x: inner.x + 1 + keyWidth, y: y, style: .normal, maxWidth: inner.width - 2 - keyWidth)
    }
  }
}

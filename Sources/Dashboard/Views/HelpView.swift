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
    ("[ ] { } Esc", "chart cursor: a step (a stored run: a sample) back / on, 10, off"),
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

  static func draw(_ g: inout CellGrid, _ m: DashboardModel, _ body: Rect) {
    let keys = Self.keys(m)
    let w = min(body.width - 2, 72)
    let h = min(body.height, keys.count + 4)
    let box = Rect(x: body.x + (body.width - w) / 2, y: body.y + max(0, (body.height - h) / 2), width: w, height: h)
    g.markPane("help", box)
    g.fill(box, Cell(" ", .normal))
    g.box(box, title: "keys" + (m.state.readonly ? " (read-only: p, c, S disabled)" : ""), style: .accent)
    let inner = box.inset(1)
    for (i, (k, d)) in keys.prefix(inner.height - 1).enumerated() {
      let y = inner.y + 1 + i
      g.put(Format.fit(k, 20), x: inner.x + 1, y: y, style: .accent)
      g.put(d, x: inner.x + 21, y: y, style: .normal, maxWidth: inner.width - 22)
    }
  }
}

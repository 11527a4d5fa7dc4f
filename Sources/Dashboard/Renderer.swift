import Foundation
import Telemetry

// Frame composition: header, tab bar, the selected view's body, status line, and overlays (help,
// stop confirmation). Every pane is a Rect handed out here, so panes never overlap.

/// Renders a dashboard model into a cell grid of a given size.
public enum Renderer {
  /// Smallest terminal the views are laid out for.
  public static let minWidth = 60
  public static let minHeight = 16

  /// Renders one frame; the grid's `panes` name the regions each view was given.
  public static func render(_ m: DashboardModel, width: Int, height: Int) -> CellGrid {
    var g = CellGrid(width: width, height: height, glyphs: m.glyphs)
    guard width >= minWidth, height >= minHeight else {
      tooSmall(&g)
      return g
    }
    let (headerRect, rest) = g.bounds.splitTop(1)
    let (tabsRect, rest2) = rest.splitTop(1)
    let body = Rect(x: rest2.x, y: rest2.y, width: rest2.width, height: rest2.height - 1)
    let status = Rect(x: 0, y: height - 1, width: width, height: 1)
    drawHeader(&g, m, headerRect)
    drawTabs(&g, m, tabsRect)
    g.markPanes(("header", headerRect), ("tabs", tabsRect), ("status", status))
    switch m.state.view {
    case .overview: OverviewView.draw(&g, m, body)
    case .rank: RankView.draw(&g, m, body)
    case .comm: CommView.draw(&g, m, body)
    case .shards: ShardsView.draw(&g, m, body)
    case .events: EventsView.draw(&g, m, body)
    }
    drawStatus(&g, m, status)
    if m.state.showHelp { HelpView.draw(&g, m, body) }
    if m.state.confirmingStop { drawConfirm(&g, m, body) }
    return g
  }

  static func tooSmall(_ g: inout CellGrid) {
    let msg = "needs \(minWidth)\(g.glyphs.times)\(minHeight), have \(g.width)\(g.glyphs.times)\(g.height)"
    let lines = g.width >= msg.unicodeScalars.count ? [msg] : ["needs \(minWidth)\(g.glyphs.times)\(minHeight)", "have \(g.width)\(g.glyphs.times)\(g.height)"]
    for (i, l) in lines.enumerated() {
      let y = max(0, g.height / 2 - lines.count / 2) + i
      let x = max(0, (g.width - l.unicodeScalars.count) / 2)
      g.put(l, x: x, y: y, style: .warn)
    }
  }

  static func drawHeader(_ g: inout CellGrid, _ m: DashboardModel, _ r: Rect) {
    g.fill(r, Cell(" ", .header))
    let h = m.header
    let glyphs = g.glyphs
    // Fields are dropped whole, least useful first, so a narrow terminal never shows a number
    // cut short; state and step always stay, and the job name is shortened last.
    struct Field { var text: String; var style: Style; var dropOrder: Int?; var isJob = false }
    let total = h.totalSteps > 0 ? "/\(h.totalSteps)" : ""
    var fields: [Field] = [
      Field(text: " tptop", style: .header, dropOrder: 4), Field(text: " ", style: .header, dropOrder: nil),
      Field(text: h.job, style: .header, dropOrder: nil, isJob: true), Field(text: "  \(h.model)", style: .header, dropOrder: 0),
      Field(text: "  \(h.grid)", style: .header, dropOrder: 3), Field(text: "  \(glyphs.dot) ", style: h.stateStyle, dropOrder: nil),
      Field(text: h.state, style: h.stateStyle, dropOrder: nil),
      Field(text: "  step \(h.step)\(total)", style: .header, dropOrder: nil),
      // a paused job processes nothing: its last rate would read as current
      Field(text: h.phase == .paused ? "  tok/s paused" : "  \(h.tokensPerSecond.map(Format.count) ?? "–") tok/s",
            style: .header, dropOrder: 2),
    ]
    if !h.features.isEmpty {
      fields.insert(Field(text: "  \(h.features)", style: .header, dropOrder: 2), at: fields.firstIndex { $0.text.hasPrefix("  \(glyphs.dot)") }!)
    }
    if let eta = h.etaSeconds { fields.append(Field(text: "  ETA \(Format.duration(seconds: eta))", style: .header, dropOrder: 1)) }
    if m.state.readonly { fields.append(Field(text: "  [read-only]", style: .header, dropOrder: nil)) }
    func length() -> Int { fields.reduce(0) { $0 + $1.text.unicodeScalars.count } }
    while length() > r.width, let i = fields.indices.filter({ fields[$0].dropOrder != nil })
            .min(by: { fields[$0].dropOrder! < fields[$1].dropOrder! }) {
      fields.remove(at: i)
    }
    if length() > r.width, let j = fields.firstIndex(where: \.isJob) {
      fields[j].text = Format.fit(h.job, max(2, h.job.unicodeScalars.count - (length() - r.width)))
    }
    var x = r.x
    for f in fields { x += g.put(f.text, x: x, y: r.y, style: f.style, maxWidth: r.maxX - x) }
  }

  static func drawTabs(_ g: inout CellGrid, _ m: DashboardModel, _ r: Rect) {
    g.fill(r, Cell(" ", .normal))
    var x = r.x + 1
    for v in ViewKind.allCases {
      let label = " \(v.rawValue + 1) \(v.title) "
      let style: Style = v == m.state.view ? .selection : .dim
      x += g.put(label, x: x, y: r.y, style: style, maxWidth: r.maxX - x)
      x += 1
    }
    let help = "? help  \(quitKey(m))"
    if r.maxX - help.count - 1 > x { g.put(help, x: r.maxX - help.count - 1, y: r.y, style: .dim) }
  }

  static func drawStatus(_ g: inout CellGrid, _ m: DashboardModel, _ r: Rect) {
    g.fill(r, Cell(" ", .statusBar))
    if let msg = m.state.message {
      g.put(" " + msg.text, x: r.x, y: r.y, style: msg.style == .dim ? .statusBar : msg.style, maxWidth: r.width - 1)
      return
    }
    // a job that has ended (or a stored run) takes no commands: its keys are not offered
    let keys = m.state.readonly
      ? " ? help  \(quitKey(m))  [read-only]  1-5/Tab views  \(g.glyphs.leftRight) rank  s smooth  l log-y  m lines  t theme"
      : !offersControl(m) ? " ? help  \(quitKey(m))  1-5/Tab views  \(g.glyphs.leftRight) rank  s smooth  l log-y  m lines  t theme"
      : " ? help  q detach  p pause/resume  c checkpoint  S stop  1-5/Tab views  \(g.glyphs.leftRight) rank  s smooth  l log-y  t theme"
    // one column short of the edge: a terminal's bottom-right cell is never drawn, and the
    // mark of a clipped key list must show
    g.put(keys, x: r.x, y: r.y, style: .statusBar, maxWidth: r.width - 1)
    let right = " theme \(m.themeName) "
    if r.width > keys.count + right.count + 2 { g.put(right, x: r.maxX - right.count, y: r.y, style: .statusBar) }
  }

  /// Whether the job takes pause, checkpoint and stop: a live segment whose phase is not over.
  static func offersControl(_ m: DashboardModel) -> Bool { !m.history.job.stored && m.header.phase.takesCommands }

  /// What q does: detach from a live job (which keeps running), quit an ended job or a stored run.
  static func quitKey(_ m: DashboardModel) -> String { offersControl(m) ? "q detach" : "q quit" }

  static func drawConfirm(_ g: inout CellGrid, _ m: DashboardModel, _ body: Rect) {
    let lines = stopPrompt(m)
    let w = min(body.width - 4, (lines.map { $0.unicodeScalars.count }.max() ?? 0) + 4)
    let h = min(body.height, lines.count + 4)
    let box = Rect(x: body.x + (body.width - w) / 2, y: body.y + max(0, (body.height - h) / 2), width: w, height: h)
    g.markPane("confirm stop", box)
    g.fill(box, Cell(" ", .normal))
    g.box(box, title: "confirm stop", style: .warn, titleStyle: .warn)
    for (i, line) in lines.prefix(h - 4).enumerated() {
      g.put(line, x: box.x + 2, y: box.y + 2 + i, style: i == 0 || i == lines.count - 1 ? .warn : .normal, maxWidth: w - 4)
    }
  }

  /// The stop prompt's lines: that the stop is final, whether a checkpoint is written first
  /// (and where, when the job has saved one before), and the keys.
  public static func stopPrompt(_ m: DashboardModel) -> [String] {
    let features = m.history.job.features
    let lastSaved = m.history.events.suffix(m.history.events.count).last { $0.kind == .checkpointSaved && !$0.text.isEmpty }
    // the event reads "checkpoint saved: DIR/step_…"
    let lastPath = lastSaved.flatMap { e in e.text.range(of: ": ").map { String(e.text[$0.upperBound...]) } }
    var lines = ["Stop job \(m.header.job) at the next step, for good?",
                 "Every rank exits; only tptrain --resume continues it, from a checkpoint."]
    if features.ignoresControl {
      lines.append("This job says it does not apply stop requests: nothing will stop it.")
    } else if features.checkpointAtStop {
      let dir = (lastPath.map { ($0 as NSString).deletingLastPathComponent } ?? m.history.job.checkpointDirectory).map { " in " + $0 }
        ?? " in its --checkpoint-dir"
      lines.append("A last checkpoint is written first\(dir).")
    } else if let lastPath {
      lines.append("No checkpoint is written at the stop; the last is \(lastPath): press n, then c for a newer one.")
    } else {
      lines.append("No checkpoint is written at the stop: press n, then c to save one first.")
    }
    lines.append("y stop  /  n keep running")
    return lines
  }
}

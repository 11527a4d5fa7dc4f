import Foundation
import JobSchema
import Telemetry

// The job list shown by plain `tptop` when zero or several jobs are live.

/// One line of the job list.
public struct JobListRow: Equatable, Sendable {
  public var name: String
  public var state: String
  public var grid: String
  public var step: String
  public var loss: String
  public var age: String
  /// Whether the job can be attached (live, readable, ours).
  public var attachable: Bool

  /// Creates a row.
  public init(name: String, state: String, grid: String, step: String, loss: String, age: String, attachable: Bool) {
    self.name = name
    self.state = state
    self.grid = grid
    self.step = step
    self.loss = loss
    self.age = age
    self.attachable = attachable
  }

  /// A row from a telemetry job summary.
  public init(_ s: JobSummary) {
    name = s.name
    state = s.stateWord
    grid = s.worldSize > 0 ? GridNotation.text(tp: s.tp, dp: s.dp) : "–"
    step = s.totalSteps > 0 ? "\(s.step)/\(s.totalSteps)" : "\(s.step)"
    loss = s.loss.map { Format.value(Double($0)) } ?? "–"
    age = Format.duration(seconds: s.age)
    attachable = s.problem == nil && s.phase != .stale
  }

  /// Whether a job summary counts as live (attachable and not finished, failed or stale).
  public static func isLive(_ s: JobSummary) -> Bool { s.isLive }
}

/// What bare `attach` picks and what leaving a job says.
public enum AttachChoice {
  /// The jobs bare `attach` and `home` choose from, newest first: this user's live jobs; an
  /// ended job (failed, finished, stale) is never picked for the user.
  public static func attachable(_ jobs: [JobSummary]) -> [JobSummary] {
    jobs.filter { $0.isMine && $0.isLive }.sorted { $0.age < $1.age }
  }

  /// The line for detaching from a job that goes on, or nil when it has ended (its phase is
  /// terminal, its launcher exited, or the segment cannot be read any more): only then may the
  /// message say the job keeps running.
  public static func keepsRunning(name: String, summary: JobSummary, launcherExit: Int32?) -> String? {
    guard summary.isLive, launcherExit == nil else { return nil }
    return "detached from \(name); the job keeps running. Attach again with: tptop attach \(name)"
  }
}

/// The job list screen.
public enum JobPicker {
  /// Renders the list with `selected` highlighted.
  public static func render(_ rows: [JobListRow], selected: Int, width: Int, height: Int, glyphs: Glyphs = .utf8) -> CellGrid {
    var g = CellGrid(width: width, height: height, glyphs: glyphs)
    guard width >= 40, height >= 6 else {
      g.put("needs 40\(g.glyphs.times)6, have \(width)\(g.glyphs.times)\(height)", x: 0, y: 0, style: .warn)
      return g
    }
    g.fill(Rect(x: 0, y: 0, width: width, height: 1), Cell(" ", .header))
    g.put(" tptop  pick a job to attach", x: 0, y: 0, style: .header)
    let box = Rect(x: 0, y: 1, width: width, height: height - 2)
    g.box(box, title: "jobs on this machine (\(rows.count))")
    let inner = box.inset(1)
    let header = Format.fit("job", 34) + Format.fit("state", 12) + Format.fit("grid", 8) + Format.fit("step", 14) + Format.fit("loss", 9) + "age"
    g.put(header, x: inner.x + 2, y: inner.y, style: .title, maxWidth: inner.width - 2)
    if rows.isEmpty {
      g.put("no jobs: start one with `tptop demo` or `tptop launch -- \(g.glyphs.ellipsis)`", x: inner.x + 2, y: inner.y + 2, style: .dim, maxWidth: inner.width - 2)
    }
    for (i, r) in rows.prefix(max(0, inner.height - 1)).enumerated() {
      let y = inner.y + 1 + i
      let line = Format.fit(r.name, 34) + Format.fit(r.state, 12) + Format.fit(r.grid, 8) + Format.fit(r.step, 14) + Format.fit(r.loss, 9) + r.age
      let style: Style = i == selected ? .selection : (r.attachable ? .normal : .dim)
      if i == selected { g.fill(Rect(x: inner.x, y: y, width: inner.width, height: 1), Cell(" ", .selection)) }
      g.put(line, x: inner.x + 2, y: y, style: style, maxWidth: inner.width - 2)
    }
    let status = Rect(x: 0, y: height - 1, width: width, height: 1)
    g.fill(status, Cell(" ", .statusBar))
    g.put(" \(g.glyphs.upDown) select  Enter attach  r refresh  q quit", x: 0, y: height - 1, style: .statusBar)
    return g
  }

  /// A fresh list merged into the one on screen: jobs already listed keep their places (their
  /// numbers updated; a job whose segment went away stays, not attachable), new jobs go at the
  /// end, so the row under the cursor never changes under the user's key.
  public static func merge(_ shown: [JobListRow], _ fresh: [JobListRow]) -> [JobListRow] {
    let byName = Dictionary(fresh.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    var out = shown.map { row -> JobListRow in
      if let f = byName[row.name] { return f }
      var gone = row
      gone.state = "gone"
      gone.attachable = false
      return gone
    }
    let known = Set(shown.map(\.name))
    out += fresh.filter { !known.contains($0.name) }
    return out
  }

  /// Lets the user pick a job. `list` is re-read on `r` and every few seconds. Returns the
  /// chosen job's name, or nil when the user quit.
  public static func run(backend: ScreenBackend, theme: Theme, list: () -> [JobListRow]) -> String? {
    backend.apply(theme)
    var rows = list()
    var sel = 0
    var lastList = monotonicSeconds()
    while true {
      let (w, h) = backend.size
      backend.present(render(rows, selected: sel, width: w, height: h, glyphs: .forTerminal(unicode: backend.unicode)))
      let key = backend.readKey(timeout: 2)
      switch key {
      case .up?: sel = max(0, sel - 1)
      case .down?: sel = min(max(0, rows.count - 1), sel + 1)
      case .enter?: if sel < rows.count && rows[sel].attachable { return rows[sel].name }
      case .char("q")?, .char("Q")?, .escape?, .endOfInput?: return nil
      case .char("r")?: rows = merge(rows, list()); lastList = monotonicSeconds()
      default: break
      }
      if monotonicSeconds() - lastList > 3 { rows = merge(rows, list()); lastList = monotonicSeconds() }
      sel = min(sel, max(0, rows.count - 1))
    }
  }
}

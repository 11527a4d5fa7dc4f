import Foundation
import Telemetry

/// View 1: loss chart and the per-rank table.
enum OverviewView {
  static func draw(_ g: inout CellGrid, _ m: DashboardModel, _ body: Rect) {
    let n = tableLines(m).count
    // The table wants a row per rank (and node heading) plus header and borders; the charts
    // keep at least 7 rows.
    let tableH = min(n + 3, max(5, body.height - 7))
    let chartArea = Rect(x: body.x, y: body.y, width: body.width, height: body.height - tableH)
    let tableRect = Rect(x: body.x, y: chartArea.maxY, width: body.width, height: tableH)
    let panes = chartPanes(chartArea)
    for (metric, rect) in panes {
      g.markPane(metric == .loss ? "loss chart" : "\(metricName(metric)) chart", rect)
      drawMetric(&g, m, metric, rect)
    }
    g.markPane("rank table", tableRect)
    drawTable(&g, m, tableRect)
  }

  /// The chart panes: the loss chart, and beside it as many of grad norm, learning rate, step
  /// time and tokens/s as the room allows (a column of them, two columns on wide terminals),
  /// each at least 6 rows high.
  static func chartPanes(_ area: Rect) -> [(Metric, Rect)] {
    let others: [Metric] = [.gradNorm, .learningRate, .stepTime, .tokensPerSecond]
    guard area.width >= 70, area.height >= 6 else { return [(.loss, area)] }
    let columns = area.width >= 180 ? 2 : 1
    let sideW = columns == 2 ? area.width * 11 / 20 : max(28, area.width * 2 / 5)
    let perColumn = min(others.count / columns, area.height / 6)
    guard perColumn > 0 else { return [(.loss, area)] }
    let loss = Rect(x: area.x, y: area.y, width: area.width - sideW, height: area.height)
    var panes: [(Metric, Rect)] = [(.loss, loss)]
    let colW = sideW / columns
    for c in 0..<columns {
      let x = loss.maxX + c * colW
      let w = c == columns - 1 ? area.maxX - x : colW
      for i in 0..<perColumn {
        let y0 = area.y + area.height * i / perColumn
        let y1 = area.y + area.height * (i + 1) / perColumn
        panes.append((others[c * perColumn + i], Rect(x: x, y: y0, width: w, height: y1 - y0)))
      }
    }
    return panes
  }

  /// The chart title's name of a metric.
  static func metricName(_ metric: Metric) -> String {
    switch metric {
    case .loss: return "loss"
    case .gradNorm: return "grad norm"
    case .learningRate: return "lr"
    case .stepTime: return "ms/step"
    case .tokensPerSecond: return "tok/s"
    }
  }

  static func format(_ metric: Metric, _ v: Double) -> String {
    switch metric {
    case .learningRate: return v == 0 ? "0" : String(format: "%.2e", v)
    case .stepTime: return Format.ms(v * 1e6)
    case .tokensPerSecond: return Format.count(v)
    case .loss, .gradNorm: return Format.value(v)
    }
  }

  /// One metric's chart: the median across ranks with a min–max band, or one line per rank
  /// (`m`) with a legend; the cursor's step and each series' value there, else the latest value.
  static func drawMetric(_ g: inout CellGrid, _ m: DashboardModel, _ metric: Metric, _ r: Rect) {
    let w = m.state.smoothing
    let smoothed = metric != .learningRate && w > 0
    var title: String
    if metric == .loss {
      let mode = m.state.perRankLines ? "per rank" : "median, min\(g.glyphs.dash)max band"
      title = "loss (\(mode)"
      title += w > 0 ? ", EMA \(w)" : ", raw"
      title += m.state.logY ? ", log-y)" : ")"
    } else {
      title = metricName(metric) + (smoothed ? " (EMA \(w))" : "")
    }
    // zoomed: the factor, named as such ("loss … ×4" read as the values times four); the x axis's
    // ticks and the status line say which steps
    if m.state.zoomLevel > 0 { title += ", zoom \(g.glyphs.times)\(1 << m.state.zoomLevel)" }
    g.box(r, title: title)
    let inner = r.inset(1)
    let series = m.series(metric)
    guard series.contains(where: { !$0.points.isEmpty }) || m.stepRange == nil else {
      // a writer that does not report the metric: say so, never draw it as zero
      g.put("not reported", x: inner.x + max(0, inner.width / 2 - 6), y: inner.y + inner.height / 2, style: .dim, maxWidth: inner.width)
      return
    }
    var chart = LineChart()
    chart.logY = m.state.logY && metric == .loss
    chart.cursorX = m.state.cursorStep.map(Double.init)
    let perRank = m.state.perRankLines && series.count > 1
    if perRank {
      chart.lines = series.map { LineChart.Series(points: $0.points, style: .rank($0.rank)) }
    } else {
      // Median and range across ranks at each step.
      var byStep: [Double: [Double]] = [:]
      for s in series { for (x, y) in s.points where y.isFinite { byStep[x, default: []].append(y) } }
      let steps = byStep.keys.sorted()
      var median: [(Double, Double)] = []
      var band: [(Double, Double, Double)] = []
      median.reserveCapacity(steps.count)
      for x in steps {
        let ys = byStep[x]!.sorted()
        median.append((x, ys[ys.count / 2]))
        if ys.count > 1 && ys.last! > ys.first! { band.append((x, ys.first!, ys.last!)) }
      }
      chart.lines = [LineChart.Series(points: median, style: .chartLine)]
      chart.band = band
    }
    // The legend (per-rank lines) takes the chart's last inner row.
    var plotRect = inner
    if perRank && inner.height > 5 {
      plotRect.height -= 1
      var x = inner.x + 8
      var shown = 0
      for s in series where !s.points.isEmpty {
        let label = "\(g.glyphs.unicode ? "━" : "-") r\(s.rank) "
        guard x + label.count <= inner.maxX else { break }
        x += g.put(label, x: x, y: inner.maxY - 1, style: .rank(s.rank))
        shown += 1
      }
      if shown < series.count { g.put(g.glyphs.ellipsis, x: min(x, inner.maxX - 1), y: inner.maxY - 1, style: .dim) }
    }
    chart.draw(into: &g, in: plotRect)
    // Top-right corner of the frame: the cursor's step and values, else the latest value.
    var corner: String
    var shorter: String?  // the corner without the range, when the range does not fit
    var cornerStyle: Style = .accent
    if let c = m.state.cursorStep {
      let values = m.values(metric, atStep: c)
      if values.isEmpty {
        corner = " step \(c): \(g.glyphs.dash) "
      } else if perRank || values.count == 1 {
        corner = " step \(c): " + values.map { (perRank ? "r\($0.rank) " : "") + format(metric, $0.value) }.joined(separator: " ") + " "
      } else {
        let sorted = values.map(\.value).sorted()
        corner = " step \(c): \(format(metric, sorted[sorted.count / 2])) "
        if sorted.first! < sorted.last! {
          shorter = corner
          corner += "(\(format(metric, sorted.first!))\(g.glyphs.dash)\(format(metric, sorted.last!))) "
        }
      }
      cornerStyle = .accent
    } else {
      let lasts = series.compactMap { $0.points.last?.1 }.sorted()
      guard let last = lasts.dropFirst(lasts.count / 2).first else { return }
      corner = " now \(format(metric, last)) "
    }
    let room = r.width - title.unicodeScalars.count - 6
    if corner.unicodeScalars.count > room, let s = shorter { corner = s }
    if corner.unicodeScalars.count > room, m.state.cursorStep != nil, room > 8 {
      corner = Format.fit(corner, room)
    }
    if corner.unicodeScalars.count <= room {
      g.put(corner, x: r.maxX - corner.unicodeScalars.count - 1, y: r.y, style: cornerStyle)
    }
  }

  /// A table column: title, width, alignment, priority (lower is dropped first) and a cell drawer.
  struct Column {
    var title: String
    var width: Int
    var right: Bool
    var priority: Int
    var draw: (inout CellGrid, RankRow, Int, Int, Int) -> Void  // grid, row, x, y, width
  }

  static func text(_ f: @escaping (RankRow) -> (String, Style)) -> (inout CellGrid, RankRow, Int, Int, Int) -> Void {
    return { g, row, x, y, w in
      let (t, s) = f(row)
      g.put(Format.fit(t, w), x: x, y: y, style: s, maxWidth: w)
    }
  }

  static func rightText(_ f: @escaping (RankRow) -> (String, Style)) -> (inout CellGrid, RankRow, Int, Int, Int) -> Void {
    return { g, row, x, y, w in
      let (t, s) = f(row)
      g.put(Format.fit(t, w, right: true), x: x, y: y, style: s, maxWidth: w)
    }
  }

  /// A rank's state in one word, as every view says it: the finished ranks of a job stopped (or
  /// stopping) before its last step read stopped, as the header's phase does.
  static func stateWord(_ r: RankRow, _ m: DashboardModel) -> String {
    if r.state == .finished && (m.header.phase == .stopped || m.header.phase == .stopping) { return "stopped" }
    return r.state == .failed ? "FAILED" : r.state.label
  }

  static func columns(_ m: DashboardModel, width: Int) -> [Column] {
    let glyphs = m.glyphs
    let failedStyle: (RankRow) -> Style = { $0.state == .failed ? .error : .normal }
    var cols: [Column] = [
      Column(title: "rank", width: 5, right: false, priority: 100, draw: text { r in
        ((r.straggler ? String(glyphs.straggler) : " ") + "\(r.rank)", r.straggler ? .warn : .rank(r.rank))
      }),
      Column(title: "tp,dp", width: 5, right: false, priority: 40, draw: text { r in ("\(r.tp),\(r.dp)", .dim) }),
      // a stored run's ranks have no process: the host alone
      Column(title: m.history.job.stored ? "host" : "host:pid", width: 16, right: false, priority: 10, draw: text { r in (r.hostPid, .dim) }),
      Column(title: "state", width: 8, right: false, priority: 45, draw: text { r in
        // a lost node's ranks show no stale state as if it were current
        if r.lost { return ("LOST", .error) }
        if r.remote { return ("remote", .dim) }
        let word = stateWord(r, m)
        if word == "stopped" { return (word, .dim) }
        return (word, r.state == .failed ? .error : r.state == .paused ? .warn : .normal)
      }),
      // another node's rank: its step is on that node's screen, not 0
      Column(title: "step", width: 6, right: true, priority: 90, draw: rightText { r in (r.remote ? "–" : "\(r.step)", failedStyle(r)) }),
      Column(title: "loss", width: 7, right: true, priority: 95, draw: rightText { r in
        (r.loss.map(Format.value) ?? "–", r.loss.map { $0.isFinite ? .normal : .error } ?? .dim)
      }),
      Column(title: "ms/step", width: 7, right: true, priority: 85, draw: rightText { r in
        (r.stepMs.map { Format.ms($0 * 1e6) } ?? "–", r.straggler ? .warn : .normal)
      }),
      Column(title: "tok/s", width: 6, right: true, priority: 70, draw: rightText { r in
        (r.tokensPerSecond.map(Format.count) ?? "–", .normal)
      }),
      Column(title: "memory", width: 10, right: false, priority: 50, draw: { g, r, x, y, w in
        guard r.rssBytes > 0 else {
          g.put(Format.fit("–", 5, right: true), x: x, y: y, style: .dim)
          return
        }
        let label = Format.fit(Format.bytes(r.rssBytes), 5, right: true)
        g.put(label, x: x, y: y, style: .normal)
        drawBar(&g, x: x + 6, y: y, width: w - 6, fraction: r.memoryFraction, style: .memory(r.memoryFraction))
      }),
      Column(title: "AR p50/max", width: 10, right: true, priority: 75, draw: rightText { r in
        guard let p = r.allReduceP50Ms else { return ("–", .dim) }
        // the p50 is a log2 bucket (a factor of 2 wide): one significant digit is all it holds
        return ("\(Format.oneDigit(p))/\(Format.ms((r.allReduceMaxMs ?? 0) * 1e6))", .normal)
      }),
      // the step's share blocked in communication (exposed; hidden overlap is in the Comm view)
      Column(title: "comm%", width: 5, right: true, priority: 65, draw: rightText { r in
        (r.commPercent.map { "\(Int($0.rounded()))%" } ?? "–", (r.commPercent ?? 0) > 30 ? .warn : .normal)
      }),
      Column(title: "util", width: 8, right: false, priority: 55, draw: { g, r, x, y, w in
        guard let u = r.utilization else {
          g.put(Format.fit("–", 4, right: true), x: x, y: y, style: .dim)
          return
        }
        g.put(Format.fit("\(Int((u * 100).rounded()))%", 4, right: true), x: x, y: y, style: .normal)
        drawBar(&g, x: x + 5, y: y, width: w - 5, fraction: u, style: .utilization(u))
      }),
      // wide terminals only (the lowest priorities): where the step goes, what overlap hides,
      // and the arithmetic rate
      Column(title: "fwd/bwd/opt ms", width: 16, right: true, priority: 8, draw: rightText { r in
        guard r.forwardMs != nil || r.backwardMs != nil || r.optimizerMs != nil else { return ("–", .dim) }
        let parts = [r.forwardMs, r.backwardMs, r.optimizerMs].map { $0.map { Format.ms($0 * 1e6) } ?? "–" }
        return (parts.joined(separator: "/"), .normal)
      }),
      Column(title: "hidden", width: 6, right: true, priority: 7, draw: rightText { r in
        (r.hiddenMs.map { Format.ms($0 * 1e6) } ?? "–", r.hiddenMs == nil ? .dim : .normal)
      }),
      Column(title: "GFLOP/s", width: 7, right: true, priority: 6, draw: rightText { r in
        (r.gflops.map(Format.count) ?? "–", r.gflops == nil ? .dim : .normal)
      }),
      Column(title: "beat", width: 5, right: true, priority: 80, draw: rightText { r in
        // A finished rank stops beating: its age is history, not a warning.
        let done = r.state == .finished
        return (Format.age(r.heartbeatAge), done ? .dim : r.heartbeatAge > 10 ? .error : r.heartbeatAge > 3 ? .warn : .dim)
      }),
    ]
    // Drop the least important columns until the row fits, then give spare room to the bars.
    func total(_ c: [Column]) -> Int { c.reduce(0) { $0 + $1.width + 1 } }
    let all = cols
    while total(cols) > width, let victim = cols.enumerated().min(by: { $0.element.priority < $1.element.priority }) {
      cols.remove(at: victim.offset)
    }
    // Put back any dropped column that fits after all, most important first, in table order.
    for c in all.filter({ c in !cols.contains { $0.title == c.title } }).sorted(by: { $0.priority > $1.priority }) {
      let trial = all.filter { a in a.title == c.title || cols.contains { $0.title == a.title } }
      if total(trial) <= width { cols = trial }
    }
    var spare = width - total(cols)
    // Spare room goes to the bars first, then host:pid and the latency column; on a wide
    // terminal the bars take what is left, so the table spans the screen.
    for (title, most) in [("memory", 12), ("util", 12), ("host:pid", 8), ("AR p50/max", 3), ("memory", 40), ("util", 40)] where spare > 0 {
      if let i = cols.firstIndex(where: { $0.title == title }) {
        let add = min(spare, most)
        cols[i].width += add
        spare -= add
      }
    }
    return cols
  }

  /// A line of the rank table: a rank, or (grouped by node) a node's heading.
  enum TableLine {
    case rank(RankRow)
    case node(Int, [RankRow])
  }

  /// The table's lines: the ranks in order, or under one heading per node (`n`).
  static func tableLines(_ m: DashboardModel) -> [TableLine] {
    guard m.state.groupByNode else { return m.rows.map { .rank($0) } }
    let byNode = Dictionary(grouping: m.rows, by: \.node)
    return byNode.keys.sorted().flatMap { node in [.node(node, byNode[node]!)] + byNode[node]!.map { .rank($0) } }
  }

  /// "node 1  host-b  ranks 2–3  LOST".
  static func drawNodeHeading(_ g: inout CellGrid, _ m: DashboardModel, _ node: Int, _ rows: [RankRow], _ inner: Rect, y: Int) {
    let hosts = Array(Set(rows.map { $0.hostPid.split(separator: ":").first.map(String.init) ?? "?" })).sorted()
    let ranks = rows.map(\.rank)
    let span = ranks.count > 1 ? "ranks \(ranks.min()!)\(g.glyphs.dash)\(ranks.max()!)" : "rank \(ranks.first ?? 0)"
    let lost = rows.contains(where: \.lost)
    // what the heading can vouch for: a node whose ranks report elsewhere says so, and once the
    // job has ended no node is "reporting"
    let ended = m.header.phase.isTerminal
    let status = lost ? "LOST: its ranks stopped reporting"
      : rows.allSatisfy(\.remote) ? "remote: its ranks report on that node"
      : ended ? "" : "reporting"
    let text = "node \(node)  \(hosts.joined(separator: ","))  \(span)  \(status)"
    g.put(text, x: inner.x + 1, y: y, style: lost ? .error : .title, maxWidth: inner.width - 1)
  }

  static func drawTable(_ g: inout CellGrid, _ m: DashboardModel, _ r: Rect) {
    let stragglers = m.rows.filter(\.straggler).map { "rank \($0.rank)" }
    var title = "ranks"
    if m.nodeCount > 1 { title += " on \(m.nodeCount) nodes" }
    if !m.lostNodes.isEmpty { title += ", node \(m.lostNodes.map(String.init).joined(separator: ", ")) LOST" }
    if let s = stragglers.first { title += " (\(g.glyphs.straggler) straggler: \(s))" }
    g.box(r, title: title)
    let inner = r.inset(1)
    guard inner.height > 1 else { return }
    let cols = columns(m, width: inner.width)
    var x = inner.x
    for c in cols {
      let title = c.title == "AR p50/max" && c.width >= 13 ? "AR p50/max ms" : c.title
      g.put(Format.fit(title, c.width, right: c.right), x: x, y: inner.y, style: .title, maxWidth: c.width)
      x += c.width + 1
    }
    let visible = inner.height - 1
    let lines = tableLines(m)
    let n = lines.count
    // Keep the selected rank in view.
    let selectedLine = lines.firstIndex { if case .rank(let row) = $0 { return row.rank == m.state.selectedRank }; return false } ?? 0
    var first = 0
    if n > visible { first = min(max(0, selectedLine - visible / 2), n - visible) }
    for (i, line) in lines[first..<min(n, first + visible)].enumerated() {
      let y = inner.y + 1 + i
      guard case .rank(let row) = line else {
        if case .node(let node, let rows) = line { drawNodeHeading(&g, m, node, rows, inner, y: y) }
        continue
      }
      var x = inner.x
      for c in cols {
        c.draw(&g, row, x, y, c.width)
        x += c.width + 1
      }
      if row.remote {
        // another node's rank: greyed, its numbers are on that node's screen
        for cx in inner.x..<inner.maxX { g[cx, y].style = .dim }
      }
      if row.rank == m.state.selectedRank && m.rows.count > 1 {
        g[inner.x, y] = Cell(g.glyphs.pointer, .accent)
      }
    }
    if n > visible {
      let more = " \(first)\(g.glyphs.dash)\(min(n, first + visible) - 1) of \(n), \(g.glyphs.upDown) scroll "
      g.put(more, x: r.maxX - more.unicodeScalars.count - 1, y: r.maxY - 1, style: .dim)
    }
  }
}

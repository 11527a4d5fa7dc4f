import Foundation
import JobSchema

/// View 3: rank × time heat maps of all-reduce latency and of compute utilization, and under
/// them exposed versus hidden communication per rank and per step, naming the rank the others
/// wait for when one stands out.
enum CommView {
  static func draw(_ g: inout CellGrid, _ m: DashboardModel, _ all: Rect) {
    let n = m.history.job.worldSize
    // the exposure table: one row per rank (scrolling when short), a straggler line, a border
    let (body, table) = all.splitTop(all.height - min(n + 3, max(5, all.height * 2 / 5)))
    exposure(&g, m, table)
    // Side by side when short, stacked when there is room for both with every rank.
    let stacked = body.height >= 2 * (n + 4) && body.width < 160
    let a: Rect, b: Rect
    if stacked {
      (a, b) = body.splitTop(body.height / 2)
    } else {
      (a, b) = body.splitLeft(body.width / 2)
    }
    g.markPane("latency heatmap", a)
    g.markPane("utilization heatmap", b)
    // Latency on a log scale across the visible window, so a 10× outlier stands out.
    var lo = Double.infinity, hi = 0.0
    let cols = max(1, a.width - 8)
    for r in 0..<n {
      for s in m.history.samples[r].suffix(cols) where s.allReduceCount > 0 {
        let v = Double(s.allReduceTotalNs) / Double(s.allReduceCount)
        if v > 0 { lo = min(lo, v); hi = max(hi, v) }
      }
    }
    let llo = lo.isFinite ? log(lo) : 0, lhi = hi > 0 ? log(hi) : 1
    heat(&g, m, a, title: "all-reduce mean latency per step",
         legend: lo.isFinite ? "\(Format.ms(lo))\(g.glyphs.dash)\(Format.ms(hi)) ms, log scale" : "no all-reduces yet") { s in
      guard s.allReduceCount > 0 else { return nil }
      let v = Double(s.allReduceTotalNs) / Double(s.allReduceCount)
      let f = lhi - llo > 1e-9 ? (log(max(v, 1)) - llo) / (lhi - llo) : 0.5
      return (f, Style.latency(f))
    }
    heat(&g, m, b, title: "compute utilization per step", legend: "0\(g.glyphs.dash)100%") { s in
      let f = Double(s.computeBusy)
      return (f, Style.utilization(f))
    }
  }

  static func heat(_ g: inout CellGrid, _ m: DashboardModel, _ r: Rect, title: String, legend: String,
                   value: (StepSample) -> (Double, Style)?) {
    g.box(r, title: title)
    let inner = r.inset(1)
    guard inner.height > 1, inner.width > 10 else { return }
    let glyphs = g.glyphs
    let n = m.history.job.worldSize
    let rowsAvail = inner.height - 1
    let cols = inner.width - 6
    var first = 0
    if n > rowsAvail { first = min(max(0, m.state.selectedRank - rowsAvail / 2), n - rowsAvail) }
    // a band of rows per rank when there is room (up to 6), so a few ranks fill the pane
    let band = n > 0 && n <= rowsAvail ? max(1, min(6, rowsAvail / n)) : 1
    for (i, rank) in (first..<min(n, first + rowsAvail / band)).enumerated() {
      let y = inner.y + i * band
      let sel = rank == m.state.selectedRank
      g.put(Format.fit((sel ? String(glyphs.pointer) : " ") + "r\(rank)", 5), x: inner.x, y: y + (band - 1) / 2, style: sel ? .accent : .rank(rank))
      let samples = m.history.samples[rank].suffix(cols)
      let x0 = inner.x + 6 + cols - samples.count
      for (k, s) in samples.enumerated() {
        // Shade encodes the level too, so the map reads without colour.
        let cell = value(s).map { Cell(glyphs.shades[max(1, Style.levelIndex($0.0))], $0.1) } ?? Cell(glyphs.barEmpty, .dim)
        for dy in 0..<band where band == 1 || dy < band - 1 || band < 3 { g[x0 + k, y + dy] = cell }
      }
    }
    let ly = inner.maxY - 1
    var x = inner.x
    x += g.put("low ", x: x, y: ly, style: .dim)
    for lvl in 0..<5 {
      let f = (Double(lvl) + 0.5) / 5
      let st = title.hasPrefix("all") ? Style.latency(f) : Style.utilization(f)
      g[x, ly] = Cell(glyphs.shades[max(1, lvl)], st)
      x += 1
    }
    x += g.put(" high  ", x: x, y: ly, style: .dim)
    g.put(legend + (n > rowsAvail ? "  (\(n - rowsAvail) ranks hidden, \(g.glyphs.leftRight) scroll)" : ""), x: x, y: ly, style: .dim, maxWidth: inner.maxX - x)
  }
}


extension CommView {
  /// The exposure table: per rank, exposed (peer wait + transfer) and hidden communication per
  /// step with a bar of the step split, then the straggler line.
  static func exposure(_ g: inout CellGrid, _ m: DashboardModel, _ r: Rect) {
    g.markPane("exposure table", r)
    let glyphs = g.glyphs
    // the title is the bar's legend too: exposed cells, hidden cells, the rest computing
    g.box(r, title: "exposed \(glyphs.shades[4]) (blocked) vs hidden \(glyphs.shades[2]) (overlapped) communication, mean per step of the last \(CommExposure.window)")
    let inner = r.inset(1)
    guard inner.height > 1, inner.width > 20 else { return }
    let n = m.history.job.worldSize
    let all = CommExposure.exposures(m.history)
    let rowsAvail = inner.height - 1
    var first = 0
    if n > rowsAvail { first = min(max(0, m.state.selectedRank - rowsAvail / 2), n - rowsAvail) }
    let stand = CommExposure.straggler(all)
    for (i, rank) in (first..<min(n, first + rowsAvail)).enumerated() {
      let y = inner.y + i
      let mark = stand?.rank == rank ? String(glyphs.straggler) : " "
      var x = inner.x
      x += g.put(Format.fit(mark + "r\(rank)", 5), x: x, y: y, style: stand?.rank == rank ? .warn : .rank(rank))
      guard let e = all[rank] else {
        let remote = m.rows[safe: rank].flatMap { $0.remote ? $0.hostPid : nil }
        g.put(remote.map { "remote, \($0): its exposure is on that node's screen" } ?? "no steps yet", x: x, y: y, style: .dim, maxWidth: inner.maxX - x)
        continue
      }
      let text = "exposed \(Format.ms(e.exposed)) ms (peer wait \(Format.ms(e.peerWait)), transfer \(Format.ms(e.transfer)))  hidden \(Format.ms(e.hidden)) ms  "
      x += g.put(text, x: x, y: y, maxWidth: inner.maxX - x)
      // the step as a bar: exposed, hidden, the rest computing
      let width = inner.maxX - x
      guard width > 4, e.step > 0 else { continue }
      let ex = Int((Double(width) * e.exposed / e.step).rounded())
      let hi = Int((Double(width) * e.hidden / e.step).rounded())
      for k in 0..<width {
        let cell = k < ex ? Cell(glyphs.shades[4], .lat4) : k < ex + hi ? Cell(glyphs.shades[2], .util4) : Cell(glyphs.barEmpty, .dim)
        g[x + k, y] = cell
      }
    }
    let ly = inner.maxY - 1
    let hiddenRanks = n > rowsAvail ? "  (\(n - rowsAvail) ranks hidden, \(g.glyphs.leftRight) scroll)" : ""
    if let stand {
      g.put("\(glyphs.straggler) straggler: rank \(stand.rank), the others wait \(Format.ms(stand.othersWaitNs)) ms a step longer (\(stand.measure.rawValue))" + hiddenRanks,
            x: inner.x, y: ly, style: .warn, maxWidth: inner.width)
    } else if let s = CommExposure.standsOut(all.map { $0?.exposed }), s.othersMedian > 0 {
      // say how close the ranks are, so "none" can be checked against the rows above
      g.put("no straggler: no rank keeps the others waiting (r\(s.rank) waits least, \(Format.ms(s.least)) ms a step; the others \(Format.ms(s.othersMedian)) ms)" + hiddenRanks,
            x: inner.x, y: ly, style: .dim, maxWidth: inner.width)
    } else {
      g.put("no straggler" + hiddenRanks, x: inner.x, y: ly, style: .dim, maxWidth: inner.width)
    }
  }
}

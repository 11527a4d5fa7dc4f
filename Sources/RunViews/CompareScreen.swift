// `tptop compare RUN RUN…`: up to eight runs overlaid (stored runs, TensorBoard runs or log
// directories), one series at a time against step, tokens or wall time, with TensorBoard's
// smoothing, linear or log y, a legend, and the table of what differs. `--plain` prints the table.

import Dashboard
import Foundation

/// What the compare screen shows; keys change it (a pure reducer, like the dashboard's).
package struct CompareState: Equatable {
  package enum XAxis: String, CaseIterable {
    case step, tokens, wall

    /// The chart's x-axis label: what the axis counts.
    var label: String {
      switch self {
      case .step: return "step"
      case .tokens: return "tokens"
      case .wall: return "seconds"
      }
    }
  }
  package static let smoothings: [Double] = [0, 0.6, 0.8, 0.9, 0.95, 0.99]

  package var seriesNames: [String]
  package var series = 0
  package var x = XAxis.step
  package var smoothing = 0
  package var logY = false
  package var quit = false

  package init(seriesNames: [String]) { self.seriesNames = seriesNames }

  /// The state after `key`: `s`/`S` next/previous series, `x` next x axis, `e`/`E` more/less
  /// smoothing, `l` log/linear y, `q` quit.
  package func handle(_ key: Key) -> CompareState {
    var s = self
    switch key {
    case .char("s"), .tab: s.series = (series + 1) % max(seriesNames.count, 1)
    case .char("S"), .backTab: s.series = (series + max(seriesNames.count, 1) - 1) % max(seriesNames.count, 1)
    case .char("x"): s.x = XAxis.allCases[(XAxis.allCases.firstIndex(of: x)! + 1) % XAxis.allCases.count]
    case .char("e"): s.smoothing = min(smoothing + 1, Self.smoothings.count - 1)
    case .char("E"): s.smoothing = max(smoothing - 1, 0)
    case .char("l"): s.logY.toggle()
    case .char("q"), .escape, .endOfInput: s.quit = true
    default: break
    }
    return s
  }
}

/// Draws the compare screen into a grid of `width` × `height`.
package func renderCompare(_ runs: [ComparedRun], _ state: CompareState, width: Int, height: Int, unicode: Bool) -> CellGrid {
  var g = CellGrid(width: width, height: height, glyphs: .forTerminal(unicode: unicode))
  let name = state.seriesNames.isEmpty ? "loss" : state.seriesNames[state.series]
  let weight = CompareState.smoothings[state.smoothing]
  g.put(" tptop compare · \(name) vs \(state.x.rawValue) · smoothing \(weight) · \(state.logY ? "log" : "linear") y",
        x: 0, y: 0, style: .title, maxWidth: width)
  let table = alignedTable(compareTable(runs))
  // the legend flows along as few lines as the width allows, each run "● name  last 2.31"
  let entries = runs.enumerated().map { i, run in
    (i, "\(run.name)  last \(run.series[name]?.last.map { Format.value($0.value) } ?? "-")")
  }
  var legendLines: [[(Int, String, Int)]] = [[]]  // (run, text, x) per line
  var lx = 1
  for (i, text) in entries {
    let w = 2 + text.count + 3
    if lx > 1 && lx + w > width { legendLines.append([]); lx = 1 }
    legendLines[legendLines.count - 1].append((i, text, lx))
    lx += w
  }
  if runs.isEmpty { legendLines = [] }
  // the table takes up to a third of the screen, but at least its header and the four loss
  // rows when the screen has room for them beside a chart of 5 rows
  let tableRoom = max(0, height - 2 - legendLines.count - 1 - 5)
  let tableHeight = min(table.count, tableRoom, max(height / 3, 5))
  let chartHeight = max(3, height - 2 - legendLines.count - tableHeight - 1)
  var chart = LineChart()
  chart.logY = state.logY
  chart.xLabel = state.x.label
  for (i, run) in runs.enumerated() {
    let points = run.series[name] ?? []
    let ys = smoothed(points.map(\.value), weight: weight)
    let t0 = points.first?.wall ?? 0
    let xs: [Double] = points.map { p in
      switch state.x {
      case .step: return p.step
      case .tokens: return p.tokens
      case .wall: return p.wall - t0
      }
    }
    chart.lines.append(LineChart.Series(points: Array(zip(xs, ys)), style: Style.rank(i)))
  }
  let chartRect = Rect(x: 0, y: 1, width: width, height: chartHeight)
  chart.draw(into: &g, in: chartRect)
  g.markPane("chart", chartRect)
  var y = 1 + chartHeight
  for line in legendLines where y < height - 1 {
    for (i, text, x) in line {
      g.put(String(g.glyphs.dot) + " ", x: x, y: y, style: Style.rank(i))
      g.put(text, x: x + 2, y: y, style: .normal, maxWidth: max(0, width - x - 2))
    }
    y += 1
  }
  let tableTop = y
  for (k, line) in table.prefix(tableHeight).enumerated() where y < height - 1 {
    // a cut table says so on its last line, and where the whole of it is
    let cut = table.count > tableHeight && k == tableHeight - 1
    let text = cut ? "\(g.glyphs.ellipsis) \(table.count - tableHeight + 1) more rows: tptop compare --plain" : line
    g.put(" " + text, x: 0, y: y, style: y == tableTop ? .header : cut ? .dim : .normal, maxWidth: width)
    y += 1
  }
  g.put(" s series  x axis  e/E smoothing  l log-y  q quit", x: 0, y: height - 1, style: .statusBar, maxWidth: width)
  return g
}

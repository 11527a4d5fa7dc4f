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
  let tableHeight = min(table.count, max(0, height / 3))
  let legendHeight = runs.count
  let chartHeight = max(3, height - 2 - legendHeight - tableHeight - 1)
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
  for (i, run) in runs.enumerated() where y < height - 1 {
    let last = run.series[name]?.last?.value
    g.put(String(g.glyphs.dot) + " ", x: 1, y: y, style: Style.rank(i))
    g.put("\(run.name)  last \(last.map { Format.value($0) } ?? "-")", x: 3, y: y, style: .normal, maxWidth: width - 3)
    y += 1
  }
  for line in table.prefix(tableHeight) where y < height - 1 {
    g.put(" " + line, x: 0, y: y, style: y == 1 + chartHeight + legendHeight ? .header : .normal, maxWidth: width)
    y += 1
  }
  g.put(" s series  x axis  e/E smoothing  l log-y  q quit", x: 0, y: height - 1, style: .statusBar, maxWidth: width)
  return g
}

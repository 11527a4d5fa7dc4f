import JobSchema
import XCTest

@testable import Dashboard

/// Wide and tall terminals are used: the rank table spans the screen with more columns, the
/// Comm heat maps give a few ranks taller rows.
final class WideLayoutTests: XCTestCase {

  func history(tp: Int = 2, dp: Int = 1, steps: Int = 120) -> JobHistory {
    let src = SyntheticSource(name: "wide", tp: tp, dp: dp, stepsPerPoll: 1)
    let h = JobHistory(job: src.job)
    for _ in 0..<steps { h.ingest(src.poll()) }
    return h
  }

  func testRankTableSpansAWideScreen() {
    let h = history()
    for w in [160, 240] {
      let g = Renderer.render(DashboardModel(history: h, state: AppState(), themeName: "default"), width: w, height: 48)
      let table = g.pane("rank table")!
      let header = g.rowText(table.y + 1)
      XCTAssertTrue(header.contains("fwd/bwd/opt ms") && header.contains("GFLOP/s") && header.contains("hidden"), "\(w): \(header)")
      let row = Array(g.rowText(table.y + 2).unicodeScalars)
      let lastInk = row.lastIndex { $0 != " " && $0 != "│" }!
      XCTAssertGreaterThan(lastInk, w - 8, "\(w): the row ends near the right border: \(String(String.UnicodeScalarView(row)))")
      // the step split of rank 0 as the samples give it (mean of the last 10 steps)
      let recent = h.samples[0].suffix(10)
      let fwd = recent.reduce(0.0) { $0 + Double($1.forwardNs) } / 10
      XCTAssertTrue(g.rowText(table.y + 2).contains(Format.ms(fwd) + "/"), g.rowText(table.y + 2))
    }
    // at 80 columns the extra columns give way to the essential ones
    let narrow = Renderer.render(DashboardModel(history: h, state: AppState(), themeName: "default"), width: 80, height: 24)
    XCTAssertFalse(narrow.text.contains("GFLOP/s"))
    XCTAssertTrue(narrow.text.contains("loss"))
  }

  func testCommHeatMapsFillTheirPanes() {
    let h = history(tp: 2)
    var s = AppState()
    s.view = .comm
    let g = Renderer.render(DashboardModel(history: h, state: s, themeName: "default"), width: 160, height: 48)
    let map = g.pane("latency heatmap")!
    let shaded = (map.y..<map.maxY).filter { y in
      (map.x..<map.maxX).contains { x in Glyphs.utf8.shades.dropFirst().contains(g[x, y].scalar) }
    }
    XCTAssertGreaterThanOrEqual(shaded.count, 8, "two ranks fill more than two rows of \(map.height)\n\(g.text)")
    // 16 ranks in a short pane still get one row each, scrolling as before
    let many = history(tp: 4, dp: 4, steps: 30)
    let g2 = Renderer.render(DashboardModel(history: many, state: s, themeName: "default"), width: 120, height: 30)
    XCTAssertTrue(g2.text.contains("ranks hidden"), g2.text)
  }
}

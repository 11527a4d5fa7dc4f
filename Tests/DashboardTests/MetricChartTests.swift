import JobSchema
import XCTest

@testable import Dashboard

/// The Overview's charts beside the loss (grad norm, learning rate, step time, tokens/s), their
/// step ticks, the cursor and the per-rank legend, on the cell grid at several sizes.
final class MetricChartTests: XCTestCase {

  func history(tp: Int = 2, steps: Int = 120) -> JobHistory {
    let src = SyntheticSource(name: "unit", tp: tp, dp: 1, stepsPerPoll: 1)
    let h = JobHistory(job: src.job)
    for _ in 0..<steps { h.ingest(src.poll()) }
    return h
  }

  func render(_ h: JobHistory, _ s: AppState, _ w: Int, _ hh: Int) -> CellGrid {
    Renderer.render(DashboardModel(history: h, state: s, themeName: "default"), width: w, height: hh)
  }

  /// The text of a pane's top border (its title and corner value).
  func titleRow(_ g: CellGrid, _ pane: String) -> String? {
    guard let r = g.pane(pane) else { return nil }
    return String(String.UnicodeScalarView(Array(g.rowText(r.y).unicodeScalars)[r.x..<r.maxX]))
  }

  /// rank 0's recorded value of `f` at `step`, read from the history's samples.
  func recorded(_ h: JobHistory, rank: Int = 0, step: Int, _ f: (StepSample) -> Double) -> Double {
    let ring = h.samples[rank]
    return f((0..<ring.count).map { ring[$0] }.first { $0.step == step }!)
  }

  func testGradNormAndLearningRateAreChartedAtEverySize() {
    let h = history()
    var s = AppState()
    s.smoothingIndex = 0  // raw values: the corner shows the newest record's value
    for (w, hh) in [(80, 24), (120, 40), (200, 60), (240, 70)] {
      let g = render(h, s, w, hh)
      let gn = try! XCTUnwrap(titleRow(g, "grad norm chart"), "\(w)×\(hh)\n\(g.text)")
      XCTAssertTrue(gn.contains("grad norm"), gn)
      // both ranks recorded the same global norm at step 120: the median is that value
      let want = Format.value(recorded(h, step: 120) { Double($0.gradNorm) })
      XCTAssertTrue(gn.contains("now \(want)"), "\(w): \(gn)")
      let lr = try! XCTUnwrap(titleRow(g, "lr chart"), g.text)
      XCTAssertTrue(lr.contains("now 3.00e-04"), lr)
      // a constant learning rate is drawn in the middle of a range around it, not at 0 of 0…0.5
      let lrPane = g.pane("lr chart")!
      let axisText = (lrPane.y..<lrPane.maxY).map { g.rowText($0) }.joined(separator: "\n")
      XCTAssertTrue(axisText.contains("3.3e-04") && axisText.contains("2.7e-04"), axisText)
      XCTAssertFalse(axisText.contains("0.550"), axisText)
      if hh >= 40 {
        XCTAssertNotNil(g.pane("ms/step chart"), "\(w)×\(hh)")
        XCTAssertNotNil(g.pane("tok/s chart"), "\(w)×\(hh)")
      }
      // every chart draws its line
      for name in ["loss chart", "grad norm chart", "lr chart"] {
        let r = g.pane(name)!
        let cells = (r.y..<r.maxY).flatMap { y in (r.x..<r.maxX).map { g[$0, y].scalar } }
        XCTAssertTrue(cells.contains { (0x2801...0x28FF).contains($0.value) }, "\(name) \(w)×\(hh)")
      }
      // the loss chart keeps most of the width
      XCTAssertGreaterThanOrEqual(g.pane("loss chart")!.width, w * 2 / 5, "\(w)")
    }
  }

  func testStepAxisHasRoundTicksUnderTheirSteps() {
    let h = history(steps: 120)
    let g = render(h, AppState(), 120, 40)
    let r = g.pane("loss chart")!
    // the last inner row of the box, within the loss chart's own columns
    let axis = String(String.UnicodeScalarView(Array(g.rowText(r.maxY - 2).unicodeScalars)[r.x..<r.maxX]))
    XCTAssertTrue(axis.contains("step"), axis)
    let numbers = axis.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: CharacterSet(charactersIn: "│"))) }
    XCTAssertGreaterThanOrEqual(numbers.count, 4, axis)
    let gaps = Set(zip(numbers.dropFirst(), numbers).map { $0 - $1 })
    XCTAssertEqual(gaps.count, 1, "evenly spaced: \(numbers)")
    XCTAssertTrue([1, 2, 5, 10, 20, 50].contains(gaps.first!), "a round interval: \(numbers)")
    XCTAssertTrue(numbers.allSatisfy { $0 % gaps.first! == 0 && $0 >= 1 && $0 <= 120 }, "\(numbers)")
    XCTAssertEqual(LineChart.ticks(1, 119, width: 160), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110])
    XCTAssertEqual(LineChart.ticks(1, 119, width: 80), [20, 40, 60, 80, 100])
    XCTAssertEqual(LineChart.ticks(1, 119, width: 40), [50, 100])
    XCTAssertEqual(LineChart.ticks(3, 7, width: 80), [3, 4, 5, 6, 7])
  }

  func testCursorPrintsEverySeriesAtItsStep() {
    let h = history()
    var s = AppState()
    s.cursorStep = 100
    let g = render(h, s, 120, 40)
    let loss = titleRow(g, "loss chart")!
    let lo = recorded(h, rank: 0, step: 100) { Double($0.loss) }
    XCTAssertTrue(loss.contains("step 100: \(Format.value(lo))"), loss)
    let gn = titleRow(g, "grad norm chart")!
    XCTAssertTrue(gn.contains("step 100: \(Format.value(recorded(h, step: 100) { Double($0.gradNorm) }))"), gn)
    // two ranks at different speeds: the median and the range, in ms (where the corner has room)
    let wide = render(h, s, 240, 60)
    let ms = titleRow(wide, "ms/step chart")!
    let a = recorded(h, rank: 0, step: 100) { Double($0.stepNs) }, b = recorded(h, rank: 1, step: 100) { Double($0.stepNs) }
    XCTAssertTrue(ms.contains("step 100: \(Format.ms(max(a, b)))"), ms)
    XCTAssertTrue(ms.contains("(\(Format.ms(min(a, b)))–\(Format.ms(max(a, b))))"), ms)
    // per-rank lines: each rank's value and a legend
    s.perRankLines = true
    let p = render(h, s, 120, 40)
    let perRank = titleRow(p, "loss chart")!
    XCTAssertTrue(perRank.contains("r0 \(Format.value(lo))"), perRank)
    XCTAssertTrue(perRank.contains("r1 \(Format.value(recorded(h, rank: 1, step: 100) { Double($0.loss) }))"), perRank)
    let r = p.pane("loss chart")!
    let legend = p.rowText(r.maxY - 2)
    XCTAssertTrue(legend.contains("━ r0") && legend.contains("━ r1"), legend)
    XCTAssertEqual(p[legend.unicodeScalars.map { $0 }.firstIndex(of: "━")!, r.maxY - 2].style, .rank(0))
  }

  func testCursorKeys() {
    var s = AppState()
    func press(_ c: Character) { _ = s.handle(.char(c), worldSize: 2, tensorCount: 16, desired: .run, now: 0, steps: 5...120) }
    press("]")
    XCTAssertNil(s.cursorStep, "] with no cursor does nothing")
    press("[")
    XCTAssertEqual(s.cursorStep, 120, "the first press puts it on the newest step")
    press("[")
    XCTAssertEqual(s.cursorStep, 119)
    press("{")
    XCTAssertEqual(s.cursorStep, 109)
    for _ in 0..<20 { press("{") }
    XCTAssertEqual(s.cursorStep, 5, "held at the oldest step")
    press("}")
    XCTAssertEqual(s.cursorStep, 15)
    _ = s.handle(.escape, worldSize: 2, tensorCount: 16, desired: .run, now: 0, steps: 5...120)
    XCTAssertNil(s.cursorStep)
    press("[")
    press("]")
    XCTAssertNil(s.cursorStep, "past the newest step the cursor goes off")
    _ = s.handle(.char("["), worldSize: 2, tensorCount: 16, desired: .run, now: 0, steps: nil)
    XCTAssertNil(s.cursorStep, "no steps, no cursor")
  }

  /// Over a history of one sample per 7 steps (a stored run, decimated) the cursor moves from
  /// sample to sample; `+` and `-` zoom the charts around it.
  func testCursorMovesBySampleAndZoomNarrowsTheCharts() {
    var s = AppState()
    let held = Array(stride(from: 7, through: 7000, by: 7))
    func press(_ c: Character) {
      _ = s.handle(.char(c), worldSize: 2, tensorCount: 16, desired: .run, now: 0, steps: 7...7000, heldSteps: held)
    }
    // (key, cursor before or nil to keep it, cursor after)
    let moves: [(Character, Int?, Int, String)] = [
      ("[", nil, 7000, "the newest sample"), ("[", nil, 6993, "one sample back"), ("{", nil, 6923, "ten samples back"),
      ("]", 100, 105, "from between samples: the next one"), ("[", nil, 98, "and back past where it was"),
    ]
    for (key, from, to, why) in moves {
      if let from { s.cursorStep = from }
      press(key)
      XCTAssertEqual(s.cursorStep, to, why)
    }
    for _ in 0..<30 { press("{") }
    XCTAssertEqual(s.cursorStep, 7, "held at the oldest sample")
    s.cursorStep = 3500
    XCTAssertEqual(s.visibleSteps(7...7000), 7...7000, "no zoom: the whole history")
    press("+")
    XCTAssertEqual(s.zoomLevel, 1)
    XCTAssertEqual(s.visibleSteps(7...7000), 1752...5248, "half the history, centred on the cursor")
    press("+")
    XCTAssertEqual(s.visibleSteps(7...7000).count, 1749)
    s.cursorStep = nil
    XCTAssertEqual(s.visibleSteps(7...7000).upperBound, 7000, "no cursor: ending at the newest step")
    for _ in 0..<20 { press("+") }
    XCTAssertEqual(s.zoomLevel, AppState.maxZoomLevel)
    for _ in 0..<20 { press("-") }
    XCTAssertEqual(s.zoomLevel, 0)
    // the charts draw only the steps shown, and their title gives the zoom
    let h = history()
    var z = AppState()
    z.cursorStep = 60
    z.zoomLevel = 2
    let range = z.visibleSteps(h.stepRange!)
    XCTAssertLessThan(range.count, h.stepRange!.count / 3)
    XCTAssertTrue(range.contains(60))
    let model = DashboardModel(history: h, state: z, themeName: "default")
    for series in model.series(.loss) {
      XCTAssertFalse(series.points.isEmpty)
      XCTAssertTrue(series.points.allSatisfy { range.contains(Int($0.0)) }, "\(series.points.map(\.0))")
    }
    let title = titleRow(render(h, z, 120, 40), "loss chart")!
    XCTAssertTrue(title.contains(", zoom ×4"), title)
    // the x axis's step ticks lie in the steps shown
    let g = render(h, z, 120, 40)
    let r = g.pane("loss chart")!
    let axis = String(String.UnicodeScalarView(Array(g.rowText(r.maxY - 2).unicodeScalars)[r.x..<r.maxX]))
    let ticks = axis.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: CharacterSet(charactersIn: "│"))) }
    XCTAssertGreaterThanOrEqual(ticks.count, 2, axis)
    XCTAssertTrue(ticks.allSatisfy { range.contains($0) }, "\(ticks) outside \(range)")
  }

  /// A writer that reports neither grad norm nor learning rate: the charts say so.
  func testUnreportedMetricsAreSaidNotDrawnAtZero() {
    let src = SyntheticSource(name: "unit", tp: 1, dp: 1, stepsPerPoll: 1)
    let h = JobHistory(job: src.job)
    for _ in 0..<30 {
      var p = src.poll()
      p.steps = p.steps.map { $0.map { var s = $0; s.gradNorm = 0; s.lr = 0; return s } }
      h.ingest(p)
    }
    let g = render(h, AppState(), 120, 40)
    for name in ["grad norm chart", "lr chart"] {
      let r = g.pane(name)!
      let text = (r.y..<r.maxY).map { g.rowText($0) }.joined(separator: "\n")
      XCTAssertTrue(text.contains("not reported"), "\(name)\n\(g.text)")
    }
  }

  /// Steps of a one-rank job with the given wall times; each step measures only `computeMs`.
  func timedHistory(total: Int, walls: [Double], computeMs: Double = 5, tweak: (inout StepSample) -> Void = { _ in }) -> JobHistory {
    let job = JobSpec(name: "eta", model: "python", tp: 1, dp: 1, totalSteps: total, tensors: [])
    let h = JobHistory(job: job)
    var p = SourcePoll()
    p.ranks = [RankHealth(rank: 0, pid: 42, host: "h", state: .running, heartbeatAge: 0.1)]
    p.steps = [walls.enumerated().map { i, t in
      var s = StepSample()
      s.step = i + 1
      s.loss = 3
      s.stepNs = UInt64(computeMs * 1e6)
      s.tokens = 100
      s.wallTime = t
      tweak(&s)
      return s
    }]
    h.ingest(p)
    return h
  }

  /// The ETA follows the records' wall-clock pace, not the step time the job measured: a loop
  /// that times 5 ms of compute in 1 s steps has 1 s per remaining step left.
  func testETAFollowsWallClockPace() {
    let walls = (0..<20).map { 1000 + Double($0) * 1.0 }
    let h = timedHistory(total: 25, walls: walls)
    let m = DashboardModel(history: h, state: AppState(), themeName: "default")
    XCTAssertEqual(m.header.etaSeconds!, 5 * 1.0, accuracy: 1e-9)
    // one long gap (a pause, a checkpoint) does not swing it: the median pace
    var paused = walls
    for i in 10..<20 { paused[i] += 120 }
    let p = DashboardModel(history: timedHistory(total: 25, walls: paused), state: AppState(), themeName: "default")
    XCTAssertEqual(p.header.etaSeconds!, 5.0, accuracy: 1e-9)
    // jitter: alternating 0.5 s and 1.5 s steps; the median of the gaps
    let jittery: [Double] = (0..<21).map { (k: Int) -> Double in
      let base = 1000.0 + Double(k)
      return k % 2 == 0 ? base : base + 0.5
    }
    XCTAssertEqual(DashboardModel.secondsPerStep(timedHistory(total: 30, walls: jittery).samples[0].suffix(33))!, 1.0, accuracy: 0.51)
    // without timestamps, the ranks' step time
    let untimed = DashboardModel(history: timedHistory(total: 25, walls: Array(repeating: 0, count: 20), computeMs: 200),
                                 state: AppState(), themeName: "default")
    XCTAssertEqual(untimed.header.etaSeconds!, 5 * 0.2, accuracy: 1e-9)
    // on screen
    let g = Renderer.render(m, width: 120, height: 40)
    XCTAssertTrue(g.rowText(0).contains("ETA 5.0s"), g.rowText(0))
  }

  /// Fields the writer did not report show as unknown ("–"), not as zero.
  func testUnreportedFieldsShowAsUnknown() {
    let walls = (0..<20).map { 1000 + Double($0) }
    let h = timedHistory(total: 25, walls: walls, computeMs: 0) { $0.tokens = 0 }
    let m = DashboardModel(history: h, state: AppState(), themeName: "default")
    let row = m.rows[0]
    XCTAssertNil(row.stepMs)
    XCTAssertNil(row.tokensPerSecond)
    XCTAssertNil(row.utilization)
    XCTAssertNil(row.commPercent)
    XCTAssertNil(m.header.tokensPerSecond)
    let g = Renderer.render(m, width: 160, height: 40)
    XCTAssertTrue(g.rowText(0).contains("– tok/s"), g.rowText(0))
    let table = g.pane("rank table")!
    let line = g.rowText(table.y + 2)
    XCTAssertFalse(line.contains("0%"), "no measured zero: \(line)")
    XCTAssertGreaterThanOrEqual(line.components(separatedBy: "–").count - 1, 5, line)
    // a job that does report them
    let full = DashboardModel(history: timedHistory(total: 25, walls: walls) { $0.computeBusy = 0.5; $0.commNs = 1_000_000 },
                              state: AppState(), themeName: "default")
    XCTAssertEqual(full.rows[0].utilization!, 0.5, accuracy: 1e-6)
    XCTAssertEqual(full.rows[0].commPercent!, 20, accuracy: 1e-6)
    XCTAssertEqual(full.rows[0].tokensPerSecond!, 100 / 0.005, accuracy: 1e-6)
  }
}

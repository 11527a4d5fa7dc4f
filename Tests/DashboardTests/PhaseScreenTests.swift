import JobSchema
import XCTest

@testable import Dashboard
@testable import Telemetry

/// What the screen offers follows the job's phase (`JobPhase`): an ended job or a stored run
/// takes no commands and q quits; a paused job shows no stale rate; bare `attach` picks only
/// this user's live jobs and says "keeps running" only of a job that does. At 80×24.
final class PhaseScreenTests: XCTestCase {

  /// A history of 30 steps, then one poll with every rank in `state` and `desired` on the page.
  func history(_ state: RunState, desired: DesiredState = .run, stored: Bool = false, totalSteps: Int = 5000) -> JobHistory {
    let src = SyntheticSource(name: "unit", tp: 2, dp: 1, totalSteps: totalSteps, stepsPerPoll: 1)
    var spec = src.job
    spec.stored = stored
    let h = JobHistory(job: spec)
    for _ in 0..<30 {
      var p = src.poll()
      if stored { p.ranks = p.ranks.map { RankHealth(rank: $0.rank, pid: 0, host: "vm", state: $0.state, heartbeatAge: 0) } }
      h.ingest(p)
    }
    var p = SourcePoll()
    p.ranks = h.ranks.map { r in var r = r; r.state = state; return r }
    p.desired = desired
    h.ingest(p)
    return h
  }

  func render(_ h: JobHistory, _ s: AppState = AppState()) -> CellGrid {
    Renderer.render(DashboardModel(history: h, state: s, themeName: "default"), width: 80, height: 24)
  }

  func testALiveJobOffersItsControlKeys() {
    let g = render(history(.running))
    XCTAssertTrue(g.rowText(23).contains("q detach  p pause/resume  c checkpoint  S stop"), g.rowText(23))
    XCTAssertTrue(g.rowText(1).contains("q detach"), g.rowText(1))
  }

  func testAnEndedJobOffersNoControlKeys() {
    for (state, word) in [(RunState.finished, "stopped"), (.failed, "failed")] {
      let h = history(state)
      let g = render(h)
      XCTAssertTrue(g.rowText(0).contains(word), g.rowText(0))
      let status = g.rowText(23)
      for key in ["p pause", "c checkpoint", "S stop", "q detach"] { XCTAssertFalse(status.contains(key), "\(key) offered: \(status)") }
      XCTAssertTrue(status.contains("q quit"), status)
      XCTAssertTrue(g.rowText(1).contains("q quit"), g.rowText(1))
      var help = AppState()
      help.showHelp = true
      let text = (0..<24).map { render(h, help).rowText($0) }.joined(separator: "\n")
      XCTAssertFalse(text.contains("pause or resume") || text.contains("stop the job"), text)
      XCTAssertFalse(text.contains("the job keeps running"), text)
    }
  }

  func testAStoredRunSaysQuitAndShowsNoPid() {
    let h = history(.finished, stored: true, totalSteps: 30)
    var rankView = AppState()
    rankView.view = .rank
    let ranks = (0..<24).map { render(h, rankView).rowText($0) }.joined(separator: "\n")
    XCTAssertFalse(ranks.contains("vm:0"), ranks)
    XCTAssertTrue(ranks.contains("  vm  "), ranks)
    let wide = Renderer.render(DashboardModel(history: h, state: AppState(), themeName: "default"), width: 200, height: 50)
    let table = (0..<50).map { wide.rowText($0) }.joined(separator: "\n")
    XCTAssertFalse(table.contains("vm:0") || table.contains("host:pid"), table)
    XCTAssertTrue(table.contains("vm"), table)
    let g = render(h)
    XCTAssertTrue(g.rowText(23).contains("q quit"), g.rowText(23))
    XCTAssertFalse(g.rowText(23).contains("p pause"), g.rowText(23))
    XCTAssertTrue(g.rowText(0).contains("finished"), g.rowText(0))
  }

  func testThePausedHeaderShowsNoStaleRate() throws {
    let running = render(history(.running)).rowText(0)
    XCTAssertNotNil(running.range(of: #"[0-9.]+k? tok/s"#, options: .regularExpression), running)
    let paused = render(history(.paused, desired: .pause)).rowText(0)
    XCTAssertTrue(paused.contains("paused"), paused)
    XCTAssertNil(paused.range(of: #"[0-9.]+k? tok/s"#, options: .regularExpression), "a stale rate: \(paused)")
    XCTAssertTrue(paused.contains("tok/s paused"), paused)
    XCTAssertEqual(DashboardModel.phase(history(.paused, desired: .pause)), .paused)
  }

  func testTheChartsXAxisSaysWhatItCounts() {
    for label in ["step", "tokens", "seconds"] {
      var chart = LineChart()
      chart.xLabel = label
      chart.lines = [LineChart.Series(points: [(0, 1), (1000, 2)], style: .normal)]
      var g = CellGrid(width: 60, height: 10)
      chart.draw(into: &g, in: Rect(x: 0, y: 0, width: 60, height: 10))
      XCTAssertTrue(g.rowText(9).hasPrefix(label), g.rowText(9))
    }
  }

  func summary(_ name: String, _ phase: JobPhase?, age: Double, foreign: Bool = false) -> JobSummary {
    JobSummary(name: name, phase: phase, worldSize: 2, tp: 2, dp: 1, step: 5, totalSteps: 10, loss: 3, age: age,
               foreign: foreign, problem: foreign ? "another user's segment" : nil)
  }

  func testBareAttachPicksOnlyThisUsersLiveJobs() {
    let jobs = [summary("theirs", .running, age: 1, foreign: true), summary("failed", .failed(rank: 1), age: 2),
                summary("old", .running, age: 50), summary("new", .paused, age: 10), summary("done", .finished, age: 3),
                summary("unreadable", nil, age: 4)]
    XCTAssertEqual(AttachChoice.attachable(jobs).map(\.name), ["new", "old"])
  }

  func testOnlyALiveJobKeepsRunning() {
    XCTAssertNotNil(AttachChoice.keepsRunning(name: "a", summary: summary("a", .running, age: 1), launcherExit: nil))
    XCTAssertNil(AttachChoice.keepsRunning(name: "a", summary: summary("a", .running, age: 1), launcherExit: 0))
    for ended in [JobPhase.failed(rank: 0), .finished, .stopped, .stale] {
      XCTAssertNil(AttachChoice.keepsRunning(name: "a", summary: summary("a", ended, age: 1), launcherExit: nil), "\(ended)")
    }
    XCTAssertNil(AttachChoice.keepsRunning(name: "a", summary: summary("a", nil, age: 1, foreign: true), launcherExit: nil),
                 "a segment that cannot be read is not known to run")
  }
}

import JobSchema
import Telemetry
import XCTest

@testable import Dashboard

/// The dashboard's first-contact points: the job picker's stable order, one word per state,
/// the stop prompt, a job that does not honour pause, other nodes' ranks, the remembered
/// settings and the all-reduce p50's precision.
final class FirstContactTests: XCTestCase {

  func row(_ name: String, _ state: String = "running") -> JobListRow {
    JobListRow(name: name, state: state, grid: "t2×d1", step: "1/10", loss: "3.0", age: "1s", attachable: true)
  }

  /// A job appearing while the picker is open goes at the end: Down + Enter attach the job that
  /// was under the cursor, not a newcomer sorted above it.
  func testPickerKeepsItsOrderWhileOpen() {
    let shown = [row("b"), row("a")]
    let fresh = [row("new"), row("a", "paused"), row("b")]
    let merged = JobPicker.merge(shown, fresh)
    XCTAssertEqual(merged.map(\.name), ["b", "a", "new"])
    XCTAssertEqual(merged[1].state, "paused", "numbers refreshed in place")
    let gone = JobPicker.merge(merged, [row("new")])
    XCTAssertEqual(gone.map(\.name), ["b", "a", "new"])
    XCTAssertEqual(gone.map(\.attachable), [false, false, true])
    XCTAssertEqual(gone[0].state, "gone")
  }

  func history(tp: Int = 2, steps: Int, total: Int = 5000) -> (JobHistory, SyntheticSource) {
    let src = SyntheticSource(name: "unit", tp: tp, dp: 1, stepsPerPoll: 1)
    var job = src.job
    job.totalSteps = total
    let h = JobHistory(job: job)
    for _ in 0..<steps { h.ingest(src.poll()) }
    return (h, src)
  }

  /// The stop prompt says the stop is final and whether a checkpoint is written, and where.
  func testStopPromptSaysFinalAndCheckpoint() {
    let (h, _) = history(steps: 20)
    var s = AppState()
    s.confirmingStop = true
    var m = DashboardModel(history: h, state: s, themeName: "default")
    let plain = Renderer.stopPrompt(m)
    XCTAssertTrue(plain[0].contains("for good"), "\(plain)")
    XCTAssertTrue(plain.contains { $0.contains("No checkpoint is written at the stop: press n, then c to save one first.") }, "\(plain)")
    XCTAssertTrue(plain.contains { $0.contains("only tptrain --resume continues it") }, "\(plain)")
    // a checkpoint asked for before, with none at the stop: the prompt names it
    var asked = SourcePoll()
    asked.events = [JobEvent(kind: .checkpointSaved, rank: 0, step: 15, wallTime: 0, text: "checkpoint saved: /runs/ck/step_00000015")]
    h.ingest(asked)
    XCTAssertTrue(Renderer.stopPrompt(DashboardModel(history: h, state: s, themeName: "default")).contains(
      "No checkpoint is written at the stop; the last is /runs/ck/step_00000015: press n, then c for a newer one."),
      "\(Renderer.stopPrompt(DashboardModel(history: h, state: s, themeName: "default")))")
    // a job that checkpoints at a stop, and has saved one before: its directory
    var spec = h.job
    spec.features.checkpointAtStop = true
    let h2 = JobHistory(job: spec)
    var p = SourcePoll()
    p.events = [JobEvent(kind: .checkpointSaved, rank: 0, step: 10, wallTime: 0, text: "checkpoint saved: /runs/ck/step_00000010")]
    h2.ingest(p)
    m = DashboardModel(history: h2, state: s, themeName: "default")
    XCTAssertTrue(Renderer.stopPrompt(m).contains("A last checkpoint is written first in /runs/ck."), "\(Renderer.stopPrompt(m))")
    // before its first save: the directory its stored run names, else the flag
    var unsaved = spec
    m = DashboardModel(history: JobHistory(job: unsaved), state: s, themeName: "default")
    XCTAssertTrue(Renderer.stopPrompt(m).contains("A last checkpoint is written first in its --checkpoint-dir."), "\(Renderer.stopPrompt(m))")
    unsaved.checkpointDirectory = "/work/ck"
    m = DashboardModel(history: JobHistory(job: unsaved), state: s, themeName: "default")
    XCTAssertTrue(Renderer.stopPrompt(m).contains("A last checkpoint is written first in /work/ck."), "\(Renderer.stopPrompt(m))")
    // on screen at 80×24 and 60×16, whole
    for (w, hh) in [(80, 24), (60, 16), (160, 48)] {
      let g = Renderer.render(DashboardModel(history: h, state: s, themeName: "default"), width: w, height: hh)
      let box = g.pane("confirm stop")!
      XCTAssertTrue(g.bounds.contains(box))
      let text = (box.y..<box.maxY).map(g.rowText).joined(separator: "\n")
      XCTAssertTrue(text.contains("y stop"), "\(w)×\(hh)\n\(g.text)")
      XCTAssertTrue(text.contains("No checkpoint"), "\(w)×\(hh)\n\(g.text)")
    }
  }

  /// Steps that keep coming after a pause request: the header says the job ignores it.
  func testPauseNotHonouredIsSaid() {
    let (h, src) = history(steps: 10)
    h.requested(.pause)
    XCTAssertEqual(DashboardModel.jobState(h).0, "pausing…")
    // the synthetic source would pause: feed steps as a loop that never asks would
    for _ in 0..<DashboardModel.honourSlack {
      var p = src.poll()
      p.desired = .pause
      h.ingest(p)
    }
    XCTAssertEqual(DashboardModel.jobState(h).0, "pausing…", "within the slack it is still pausing")
    var extra = SourcePoll()
    extra.ranks = h.ranks
    extra.desired = .pause
    extra.steps = (0..<2).map { r in [src.sample(rank: r, step: h.latestStep + 1)] }
    h.ingest(extra)
    XCTAssertEqual(DashboardModel.jobState(h).0, "running: ignores pause")
    let g = Renderer.render(DashboardModel(history: h, state: AppState(), themeName: "default"), width: 100, height: 30)
    XCTAssertTrue(g.rowText(0).contains("ignores pause"), g.rowText(0))
    // a writer that declared it applies no requests: said at once
    var spec = h.job
    spec.features.ignoresControl = true
    let declared = JobHistory(job: spec)
    declared.ingest(src.poll())
    declared.requested(.stop)
    XCTAssertEqual(DashboardModel.jobState(declared).0, "running: ignores stop")
  }

  /// In one node's namespace the job's ranks on other nodes read remote, greyed, not starting,
  /// with the node each runs on (recorded in their headers by the segment's creator).
  func testOtherNodesRanksAreRemote() {
    let job = JobSpec(name: "two", model: "small", tp: 2, dp: 3, totalSteps: 100, tensors: [])
    let h = JobHistory(job: job)
    var p = SourcePoll()
    let nodes = [0, 0, 1, 1, 2, 2]
    p.ranks = (0..<6).map { r in
      nodes[r] != 1 ? RankHealth(rank: r, pid: 0, host: "", state: .starting, heartbeatAge: .infinity, node: nodes[r])
        : RankHealth(rank: r, pid: 100 + r, host: "nodeB", state: .running, heartbeatAge: 0.2, node: 1)
    }
    p.steps = (0..<6).map { r in
      nodes[r] != 1 ? [] : (1...5).map { k in var s = StepSample(); s.step = k; s.loss = 3; s.stepNs = 1_000_000; s.rssBytes = 1 << 20; return s }
    }
    h.ingest(p)
    let m = DashboardModel(history: h, state: AppState(), themeName: "default")
    XCTAssertEqual(m.rows.map(\.remote), [true, true, false, false, true, true])
    let g = Renderer.render(m, width: 120, height: 30)
    let table = g.pane("rank table")!
    let r0 = table.y + 2
    XCTAssertTrue(g.rowText(r0).contains("remote"), g.rowText(r0))
    XCTAssertTrue(g.rowText(r0).contains("on node 0"), g.rowText(r0))
    XCTAssertTrue(g.rowText(r0 + 4).contains("on node 2"), g.rowText(r0 + 4))
    XCTAssertFalse(g.rowText(r0).contains("starting") || g.rowText(r0).contains("0B"), g.rowText(r0))
    XCTAssertEqual(g[table.x + 3, r0].style, .dim)
    XCTAssertFalse(DashboardModel.jobState(h).0.contains("starting"))
    // its step is not 0: the step column (six cells, right-aligned under its title) reads "–"
    let header = Array(g.rowText(table.y + 1)), row0 = Array(g.rowText(r0)), row2 = Array(g.rowText(r0 + 2))
    let end = try! XCTUnwrap((0..<(header.count - 3)).first { String(header[$0..<($0 + 4)]) == "step" }) + 4
    XCTAssertEqual(String(row0[(end - 6)..<end]).trimmingCharacters(in: .whitespaces), "–", String(row0))
    XCTAssertEqual(String(row2[(end - 6)..<end]).trimmingCharacters(in: .whitespaces), "5", String(row2))

    // the Rank and Comm views say where a remote rank's numbers are, not "starting" or "no steps yet"
    var state = AppState()
    state.view = .rank
    state.selectedRank = 0
    var rank = Renderer.render(DashboardModel(history: h, state: state, themeName: "default"), width: 120, height: 30)
    var summary = rank.rowText(rank.pane("rank summary")!.y)
    XCTAssertTrue(summary.contains("remote, on node 0: its numbers are on that node's screen"), summary)
    XCTAssertFalse(summary.contains("starting"), summary)
    state.selectedRank = 2
    rank = Renderer.render(DashboardModel(history: h, state: state, themeName: "default"), width: 120, height: 30)
    summary = rank.rowText(rank.pane("rank summary")!.y)
    XCTAssertTrue(summary.contains("node 1  nodeB:102  running"), summary)
    state.view = .comm
    let comm = Renderer.render(DashboardModel(history: h, state: state, themeName: "default"), width: 120, height: 30).text
    XCTAssertTrue(comm.contains("r0  remote, on node 0: its exposure is on that node's screen"), comm)
    XCTAssertTrue(comm.contains("r5  remote, on node 2"), comm)
    XCTAssertFalse(comm.contains("no steps yet"), comm)

    // grouped by node: another node's heading says its ranks report there, this node's reports
    state.view = .overview
    state.groupByNode = true
    let grouped = Renderer.render(DashboardModel(history: h, state: state, themeName: "default"), width: 120, height: 30).text
    XCTAssertTrue(grouped.contains("ranks 0–1  remote: its ranks report on that node"), grouped)
    XCTAssertTrue(grouped.contains("ranks 2–3  reporting"), grouped)
  }

  /// Every rank reports its checkpoint write and its stop: the Events view lists each once,
  /// saying which ranks reported it; a rank's own error stays its own line.
  func testEventsEveryRankReportsAreListedOnce() {
    let job = JobSpec(name: "ev", model: "small", tp: 2, dp: 4, totalSteps: 100, tensors: [])
    let h = JobHistory(job: job)
    var p = SourcePoll()
    let saved = "checkpoint saved: /runs/ck/step_00000040"
    p.events = [0, 1, 2, 4, 5, 6, 7].map { JobEvent(kind: .checkpointSaved, rank: $0, step: 40, wallTime: 1, text: saved) }
      + [JobEvent(kind: .error, rank: 5, step: 41, wallTime: 2, text: "error: disk slow")]
      + (0..<3).map { JobEvent(kind: .stopped, rank: $0, step: 42, wallTime: 3, text: "stopped at step 42") }
      + [JobEvent(kind: .stopped, rank: 6, step: 42, wallTime: 3, text: "stopped at step 42")]
    h.ingest(p)
    var q = SourcePoll()
    // the next poll brings the last rank's report of the same checkpoint: still one line
    q.events = [JobEvent(kind: .checkpointSaved, rank: 3, step: 40, wallTime: 1, text: saved)]
    h.ingest(q)
    XCTAssertEqual(h.events.count, 3)
    XCTAssertEqual(h.events[0].reporters(world: 8), "all")
    XCTAssertEqual(h.events[2].reporters(world: 8), "4 ranks")
    var state = AppState()
    state.view = .events
    let text = Renderer.render(DashboardModel(history: h, state: state, themeName: "default"), width: 120, height: 30).text
    XCTAssertTrue(text.contains("events (3)"), text)
    XCTAssertTrue(text.contains("step     40  all      " + saved), text)
    XCTAssertTrue(text.contains("step     41  r5       error: disk slow"), text)
    XCTAssertTrue(text.contains("step     42  4 ranks  stopped at step 42"), text)
    var two = JobEvent(kind: .paused, rank: 2, step: 9, wallTime: 0, text: "paused")
    two.ranks = [2, 3, 1]
    XCTAssertEqual(two.reporters(world: 8), "r1–3")
  }

  /// A job stopped before its last step: header and every rank row say stopped.
  func testOneWordForAStoppedJob() {
    let job = JobSpec(name: "stop", model: "small", tp: 2, dp: 1, totalSteps: 100, tensors: [])
    let h = JobHistory(job: job)
    var p = SourcePoll()
    p.ranks = (0..<2).map { RankHealth(rank: $0, pid: 10 + $0, host: "h", state: .finished, heartbeatAge: 1) }
    p.steps = (0..<2).map { _ in (1...30).map { k in var s = StepSample(); s.step = k; s.loss = 3; return s } }
    p.alive = false
    h.ingest(p)
    let m = DashboardModel(history: h, state: AppState(), themeName: "default")
    XCTAssertEqual(m.header.state, "stopped")
    let g = Renderer.render(m, width: 120, height: 30)
    let table = g.pane("rank table")!
    for y in (table.y + 2)..<(table.y + 4) {
      XCTAssertTrue(g.rowText(y).contains("stopped"), g.rowText(y))
      XCTAssertFalse(g.rowText(y).contains("finished"), g.rowText(y))
    }
    // the Rank view's summary says it the same way
    var state = AppState()
    state.view = .rank
    let rank = Renderer.render(DashboardModel(history: h, state: state, themeName: "default"), width: 120, height: 30)
    let summary = rank.rowText(rank.pane("rank summary")!.y)
    XCTAssertTrue(summary.contains("  stopped  beat"), summary)
  }

  func testAllReduceP50CarriesOneDigit() {
    XCTAssertEqual(Format.oneDigit(pow(2, 6.5) / 1000), "0.09")
    XCTAssertEqual(Format.oneDigit(pow(2, 7.5) / 1000), "0.2")
    XCTAssertEqual(Format.oneDigit(pow(2, 9.5) / 1000), "0.7")
    XCTAssertEqual(Format.oneDigit(pow(2, 10.5) / 1000), "1")
    XCTAssertEqual(Format.oneDigit(23), "20")
    XCTAssertEqual(Format.oneDigit(0.096), "0.1")
    let (h, _) = history(steps: 30)
    let g = Renderer.render(DashboardModel(history: h, state: AppState(), themeName: "default"), width: 200, height: 40)
    let m = DashboardModel(history: h, state: AppState(), themeName: "default")
    let p50 = Format.oneDigit(m.rows[0].allReduceP50Ms!)
    XCTAssertTrue(g.text.contains(" \(p50)/"), g.text)
  }

  /// Smoothing, log-y, lines and the theme survive a new session through the settings file.
  func testSettingsAreRememberedBetweenSessions() throws {
    let dir = NSTemporaryDirectory() + "ux-settings-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    XCTAssertEqual(DashboardSettings.path(environment: ["XDG_CONFIG_HOME": dir]), dir + "/tptop/tptop.conf")
    XCTAssertEqual(DashboardSettings.path(environment: ["HOME": "/home/u"]), "/home/u/.config/tptop/tptop.conf")
    let path = dir + "/tptop/tptop.conf"
    let themes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../themes").standardized.path
    let library = ThemeLibrary(directories: [themes])
    XCTAssertGreaterThan(library.themes.count, 1, themes)
    func app() -> DashboardApp {
      DashboardApp(source: SyntheticSource(name: "s", tp: 2, stepsPerPoll: 1), backend: CaptureBackend(width: 80, height: 24),
                   library: library, theme: .builtIn, options: DashboardOptions(settingsPath: path))
    }
    let first = app()
    XCTAssertEqual(first.state.smoothingIndex, AppState().smoothingIndex)
    first.handle(.char("s"))
    first.handle(.char("l"))
    first.handle(.char("m"))
    first.handle(.char("t"))
    let (saved, problems) = DashboardSettings.load(path: path)
    XCTAssertEqual(problems, [])
    XCTAssertEqual(saved.smoothingIndex, 2)
    XCTAssertTrue(saved.logY && saved.perRankLines)
    XCTAssertEqual(saved.theme, library.themes[1].name)
    let second = app()
    XCTAssertEqual(second.state.smoothingIndex, 2)
    XCTAssertTrue(second.state.logY && second.state.perRankLines)
    // a broken line is named and skipped
    let (parsed, bad) = DashboardSettings.parse("smoothing = 0.5\nlog_y = maybe\nper_rank_lines = yes\ncolour = red\n")
    XCTAssertEqual(bad, ["line 1: smoothing must be one of 0.0, 0.6, 0.9, 0.99, not '0.5'",
                         "line 2: log_y must be true or false, not 'maybe'", "line 4: unknown key 'colour'"])
    XCTAssertTrue(parsed.perRankLines)
    XCTAssertEqual(DashboardSettings.parse(saved.text).0, saved)
  }
}

extension FirstContactTests {
  /// A GPU job's device memory (torch.cuda, from the rank header) in the Rank view, labelled as
  /// device memory beside the host rows; a CPU job shows no such rows.
  func testDeviceMemoryIsLabelledInTheRankView() {
    let (h, src) = history(steps: 10)
    var s = AppState()
    s.view = .rank
    let cpu = Renderer.render(DashboardModel(history: h, state: s, themeName: "default"), width: 120, height: 40)
    XCTAssertFalse(cpu.text.contains("device memory"))
    var p = src.poll()
    p.ranks = p.ranks.map { var r = $0; r.device = DeviceUsage(allocatedBytes: 3 << 30, reservedBytes: 4 << 30, peakBytes: 5 << 30, utilization: 0.41); return r }
    h.ingest(p)
    let g = Renderer.render(DashboardModel(history: h, state: s, themeName: "default"), width: 120, height: 40)
    let mem = g.pane("memory")!
    let text = (mem.y..<mem.maxY).map { String(String.UnicodeScalarView(Array(g.rowText($0).unicodeScalars)[mem.x..<mem.maxX])) }
    XCTAssertTrue(text.contains { $0.contains("device memory (GPU), 41% busy") }, text.joined(separator: "\n"))
    XCTAssertTrue(text.contains { $0.contains("allocated") && $0.contains("3.0G") }, text.joined(separator: "\n"))
    XCTAssertTrue(text.contains { $0.contains("reserved") && $0.contains("4.0G") }, text.joined(separator: "\n"))
    XCTAssertTrue(text.contains { $0.contains("peak") && $0.contains("5.0G") }, text.joined(separator: "\n"))
  }
}

extension FirstContactTests {
  /// Ranks that wait about as long as each other: the Comm view says so in plain words.
  func testNoStragglerLineIsPlain() {
    let job = JobSpec(name: "even", model: "small", tp: 2, dp: 1, totalSteps: 100, tensors: [])
    let h = JobHistory(job: job)
    var p = SourcePoll()
    p.ranks = (0..<2).map { RankHealth(rank: $0, pid: 10 + $0, host: "h", state: .running, heartbeatAge: 0.1) }
    p.steps = (0..<2).map { r in
      (1...40).map { k in
        var s = StepSample()
        s.step = k
        s.loss = 3
        s.stepNs = 100_000_000
        s.commNs = r == 0 ? 10_000_000 : 12_000_000
        s.allReduceCount = 4
        s.allReduceTotalNs = s.commNs
        return s
      }
    }
    h.ingest(p)
    var s = AppState()
    s.view = .comm
    let g = Renderer.render(DashboardModel(history: h, state: s, themeName: "default"), width: 160, height: 40)
    XCTAssertTrue(g.text.contains("no straggler: no rank keeps the others waiting (r0 waits least, 10.0 ms a step; the others 12.0 ms)"), g.text)
    XCTAssertFalse(g.text.contains("a straggler: 2×"), g.text)
  }
}

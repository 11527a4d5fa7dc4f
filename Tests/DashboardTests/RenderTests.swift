import JobSchema
import XCTest
@testable import Dashboard

/// Rendered grids at several terminal sizes: panes inside the screen and disjoint, key content
/// present, and the too-small message below the minimum.
final class RenderTests: XCTestCase {

  /// A history fed with `steps` polls of a synthetic job.
  func history(tp: Int = 2, dp: Int = 1, steps: Int = 120) -> (JobHistory, SyntheticSource) {
    let src = SyntheticSource(name: "unit", tp: tp, dp: dp, stepsPerPoll: 1)
    let h = JobHistory(job: src.job)
    for _ in 0..<steps { h.ingest(src.poll()) }
    return (h, src)
  }

  func render(_ h: JobHistory, _ state: AppState, _ w: Int, _ hgt: Int, glyphs: Glyphs = .utf8) -> CellGrid {
    Renderer.render(DashboardModel(history: h, state: state, themeName: "default", glyphs: glyphs), width: w, height: hgt)
  }

  func assertPanesDisjoint(_ g: CellGrid, file: StaticString = #filePath, line: UInt = #line) {
    let panes = g.panes.filter { $0.name != "help" }.map { ($0.name, $0.rect) }
    XCTAssertFalse(panes.isEmpty, file: file, line: line)
    for (name, r) in panes {
      XCTAssertTrue(g.bounds.contains(r), "\(name) \(r) outside \(g.width)×\(g.height)", file: file, line: line)
    }
    for i in 0..<panes.count {
      for j in (i + 1)..<panes.count {
        XCTAssertFalse(panes[i].1.intersects(panes[j].1),
                       "\(panes[i].0) \(panes[i].1) overlaps \(panes[j].0) \(panes[j].1)", file: file, line: line)
      }
    }
  }

  static let sizes = [(80, 24), (120, 40), (200, 60)]

  func testEveryViewAtEverySizeHasDisjointPanes() {
    let (h, _) = history(tp: 2, dp: 2)
    for (w, hh) in RenderTests.sizes {
      for v in ViewKind.allCases {
        var s = AppState()
        s.view = v
        let g = render(h, s, w, hh)
        XCTAssertEqual(g.width, w)
        assertPanesDisjoint(g)
        // Header, tab bar and status line are on every view.
        XCTAssertTrue(g.rowText(0).contains("unit"), "\(v) \(w)×\(hh): \(g.rowText(0))")
        XCTAssertTrue(g.rowText(1).contains("\(v.rawValue + 1) \(v.title)"))
        XCTAssertTrue(g.rowText(hh - 1).contains("q detach"))
      }
    }
  }

  /// On a narrow terminal the header drops whole fields (model, ETA, tok/s, grid, the tptop
  /// label), then shortens the job name: state and step are always there, never cut short.
  func testNarrowHeaderDropsWholeFields() {
    let name = "job-20261129-081447-20464-with-a-long-tail"
    let src = SyntheticSource(name: name, tp: 2, dp: 1, stepsPerPoll: 1)
    let h = JobHistory(job: src.job)
    for _ in 0..<120 { h.ingest(src.poll()) }
    for w in [60, 64, 70, 80, 100, 140] {
      let row = render(h, AppState(), w, 24).rowText(0).trimmingCharacters(in: .whitespaces)
      XCTAssertTrue(row.contains("● running"), "\(w): \(row)")
      XCTAssertTrue(row.contains("step 120/5000"), "\(w): \(row)")
      // the line ends with a whole field
      XCTAssertTrue(row.hasSuffix("/5000") || row.hasSuffix("tok/s") || row.range(of: #"ETA [0-9hms]+$"#, options: .regularExpression) != nil,
                    "\(w): \(row)")
      if w >= 100 { XCTAssertTrue(row.contains(name) && row.contains("tok/s"), "\(w): \(row)") }
    }
    // the key list is cut with a mark one column short of the edge (the terminal's last cell
    // is never drawn)
    let status = Array(render(h, AppState(), 60, 24).rowText(23).unicodeScalars)
    XCTAssertEqual(status[58], "…", String(String.UnicodeScalarView(status)))
    let narrow = render(h, AppState(), 60, 24).rowText(0)
    XCTAssertTrue(narrow.contains("job-2026") && narrow.contains("…"), narrow)
    XCTAssertFalse(narrow.contains(name), "the name is shortened at 60 columns: \(narrow)")
  }

  /// The rank view's step-split legend shows whole entries and keeps off the box border.
  func testRankLegendFitsItsBox() {
    let (h, _) = history(tp: 2)
    var s = AppState()
    s.view = .rank
    for (w, hh) in [(60, 16), (72, 20), (120, 40)] {
      let g = render(h, s, w, hh)
      guard let y = (0..<hh).first(where: { g.rowText($0).contains(" compute ") }) else { return XCTFail("\(w): no legend\n\(g.text)") }
      let row = Array(g.rowText(y).unicodeScalars)
      XCTAssertEqual(row[w - 1], "│", "\(w): \(g.rowText(y))")
      // every entry shown ends with its value: "name 0.12" (or a duration), none cut after the name
      for name in ["compute", "comm", "optimizer", "data", "other"] where g.rowText(y).contains(" \(name)") {
        XCTAssertNotNil(g.rowText(y).range(of: " \(name) [0-9.]+", options: .regularExpression), "\(w) \(name): \(g.rowText(y))")
      }
      if w >= 120 { XCTAssertTrue(g.rowText(y).contains(" other "), g.rowText(y)) }
    }
  }

  func testOverviewShowsHeaderChartAndEveryRank() {
    let (h, _) = history(tp: 2)
    for (w, hh) in RenderTests.sizes {
      let g = render(h, AppState(), w, hh)
      let text = g.text
      XCTAssertTrue(text.contains("running"), text)
      XCTAssertTrue(text.contains("step 120/5000"), text)
      XCTAssertTrue(text.contains("tok/s"))
      XCTAssertTrue(text.contains("loss ("), text)
      XCTAssertTrue(text.contains("ms/step"))
      XCTAssertTrue(text.unicodeScalars.contains { (0x2801...0x28FF).contains($0.value) }, "braille loss line")
      // One row per rank; the slowest synthetic rank (the last) carries the straggler glyph.
      let rows = (0..<hh).map(g.rowText)
      XCTAssertTrue(rows.contains { $0.contains("│ 0 ") || $0.contains("▶0 ") }, text)
      XCTAssertTrue(rows.contains { $0.contains("▲1") }, text)
      if w >= 120 {
        XCTAssertTrue(text.contains("AR p50/max"))
        XCTAssertTrue(text.contains("node0:4100"), text)
      }
    }
  }

  func testSixteenRanksScrollInsteadOfOverlapping() {
    let (h, _) = history(tp: 4, dp: 4, steps: 30)
    let g = render(h, AppState(), 80, 24)
    assertPanesDisjoint(g)
    XCTAssertTrue(g.text.contains("of 16"), g.text)
    let big = render(h, AppState(), 200, 60)
    XCTAssertTrue(big.text.contains("15"), big.text)
  }

  func testRankCommShardsEventsContent() {
    let (h, src) = history(tp: 2)
    try? src.setDesired(.pause)
    h.ingest(src.poll())
    var s = AppState()
    s.view = .rank
    s.selectedRank = 1
    var g = render(h, s, 120, 40)
    XCTAssertTrue(g.text.contains("rank 1 of 2"), g.text)
    XCTAssertTrue(g.text.contains("step time split"))
    XCTAssertTrue(g.text.contains("optimizer"))
    XCTAssertTrue(g.text.contains("activations"))
    XCTAssertTrue(g.text.contains("all-reduce latency"))

    s.view = .comm
    g = render(h, s, 120, 40)
    XCTAssertTrue(g.text.contains("all-reduce mean latency"))
    XCTAssertTrue(g.text.contains("compute utilization"))
    XCTAssertTrue(g.text.contains("r0") && g.text.contains("r1"))

    s.view = .shards
    s.selectedTensor = 4  // qkvw
    g = render(h, s, 120, 40)
    XCTAssertTrue(g.text.contains("qkvw"), g.text)
    XCTAssertTrue(g.text.contains("heads 0–2 of 6"), g.text)
    XCTAssertTrue(g.text.contains("heads 3–5 of 6"), g.text)
    XCTAssertTrue(g.text.contains("column"))
    XCTAssertTrue(g.text.contains("tp0") && g.text.contains("tp1"))

    s.view = .events
    g = render(h, s, 120, 40)
    XCTAssertTrue(g.text.contains("paused at step 120"), g.text)
    XCTAssertTrue(render(h, s, 120, 40).rowText(0).contains("paused"))
  }

  func testCommViewShowsExposedAndHiddenCommunicationAndNamesTheStraggler() {
    // the synthetic job's last rank is 15 % slower: the others wait for it in every collective
    let (h, _) = history(tp: 2, dp: 2)
    var s = AppState()
    s.view = .comm
    for (w, hh) in RenderTests.sizes {
      let g = render(h, s, w, hh)
      assertPanesDisjoint(g)
      XCTAssertTrue(g.text.contains("exposed █ (blocked) vs hidden ▒"), "\(w)×\(hh): \(g.text)")
      XCTAssertTrue(g.text.contains("straggler: rank 3"), "\(w)×\(hh): \(g.text)")
    }
    let g = render(h, s, 200, 60)
    // per rank: exposed time split into peer wait and transfer, and hidden time
    let e = CommExposure.exposures(h)
    let r0 = e[0]!
    XCTAssertTrue(g.text.contains("exposed \(Format.ms(r0.exposed)) ms (peer wait \(Format.ms(r0.peerWait)), transfer \(Format.ms(r0.transfer)))"), g.text)
    XCTAssertTrue(g.text.contains("hidden \(Format.ms(r0.hidden)) ms"), g.text)
    XCTAssertGreaterThan(r0.peerWait, 10 * e[3]!.peerWait)
    XCTAssertTrue(g.text.contains("▲r3"), g.text)
    // the overview's comm% is the exposed share of the step: the hidden part does not count
    let model = DashboardModel(history: h, state: AppState(), themeName: "default")
    let recent = h.samples[0].suffix(DashboardModel.window)
    XCTAssertTrue(recent.contains { $0.allReduceTotalNs > $0.commNs }, "the synthetic job overlaps some communication")
    let expected = 100 * recent.reduce(0.0) { $0 + Double($1.commNs) } / recent.reduce(0.0) { $0 + Double($1.stepNs) }
    XCTAssertEqual(model.rows[0].commPercent!, expected, accuracy: 1e-9)
    let overview = render(h, AppState(), 160, 40).text
    XCTAssertTrue(overview.contains("comm%"), overview)
    XCTAssertTrue(overview.contains("\(Int(expected.rounded()))%"), overview)
  }

  func testStragglerIsTheRankThatWaitsLeastWhenTheOthersWaitForIt() {
    let ms = 1_000_000.0
    func peer(_ waits: [Double?]) -> [Exposure?] { waits.map { $0.map { Exposure(exposed: $0 + 1 * ms, peerWait: $0) } } }
    let four = CommExposure.straggler(peer([6 * ms, 5 * ms, 0.1 * ms, 7 * ms]))
    XCTAssertEqual(four?.rank, 2)
    XCTAssertEqual(four?.measure, .peerWait)
    XCTAssertEqual(four?.othersWaitNs ?? 0, 5.9 * ms, accuracy: 1)
    // a rank stopped half the time: the others wait 2.1–2.4 times as long as it does
    XCTAssertEqual(CommExposure.straggler(peer([183 * ms, 185 * ms, 163 * ms, 78 * ms]))?.rank, 3)
    XCTAssertNil(CommExposure.straggler(peer([1 * ms, 1.2 * ms, 0.9 * ms])), "alike: nobody stands out")
    XCTAssertNil(CommExposure.straggler(peer([0.2 * ms, 0.01 * ms])), "too little waiting to name anyone")
    XCTAssertNil(CommExposure.straggler(peer([nil, 3 * ms])), "one rank with samples")
    XCTAssertEqual(CommExposure.straggler(peer([nil, 3 * ms, 0]))?.rank, 2, "a rank without samples is left out")
    // with overlap the waits in non-blocking collectives are not split: the exposed time names it
    let overlapped: [Exposure?] = [Exposure(exposed: 85 * ms, peerWait: 2 * ms), Exposure(exposed: 113 * ms, peerWait: 5 * ms),
                                   Exposure(exposed: 97 * ms, peerWait: 1.9 * ms), Exposure(exposed: 19.9 * ms, peerWait: 1.8 * ms)]
    let s = CommExposure.straggler(overlapped)
    XCTAssertEqual(s?.rank, 3)
    XCTAssertEqual(s?.measure, .exposed)
    XCTAssertEqual(s?.othersWaitNs ?? 0, 77.1 * ms, accuracy: 1)
  }

  func testTooSmallShowsNeededAndActualSize() {
    let (h, _) = history()
    for (w, hh) in [(59, 30), (100, 15), (30, 8), (10, 3)] {
      let g = render(h, AppState(), w, hh)
      let t = g.text.replacingOccurrences(of: "\n", with: " ")
      if w >= 20 { XCTAssertTrue(t.contains("needs \(Renderer.minWidth)×\(Renderer.minHeight)"), "\(w)×\(hh): \(t)") }
      if w >= 30 { XCTAssertTrue(t.contains("have \(w)×\(hh)"), t) }
      if w < 20 { XCTAssertTrue(t.contains("needs"), t) }
    }
  }

  func testHelpAndConfirmOverlays() {
    let (h, _) = history()
    var s = AppState()
    s.showHelp = true
    var g = render(h, s, 80, 24)
    for k in ["pause or resume", "checkpoint", "stop the job", "cycle themes", "detach"] {
      XCTAssertTrue(g.text.contains(k), k)
    }
    // at 80 columns no description is cut: the longest goes on under its key
    let help = try! XCTUnwrap(g.pane("help"), g.text)
    let inside = (help.y..<help.y + help.height).map { String(g.rowText($0).dropFirst(help.x).prefix(help.width)) }
      .joined(separator: "\n")
    XCTAssertFalse(inside.contains("…"), inside)
    for words in ["chart cursor: [ ] a step back / on, { } ten,", "Esc off", "zoom the charts in / out around the cursor", "detach (the job keeps running)"] {
      XCTAssertTrue(inside.contains(words), "help lacks '\(words)':\n\(inside)")
    }
    // a screen too short for wrapped lines still lists every key, one line each
    g = render(h, s, 60, 24)
    for k in ["1 2 3 4 5", "Tab / S-Tab", "[ ] { } Esc", "+ -", "cycle themes", "detach"] {
      XCTAssertTrue(g.text.contains(k), "\(k) at 60×24:\n\(g.text)")
    }
    // and a shorter one says how many lines it could not show
    g = render(h, s, 80, 18)
    XCTAssertTrue(g.text.contains("more lines: a taller terminal shows them"), g.text)
    // on an ASCII terminal too, with ASCII marks
    g = render(h, s, 60, 18, glyphs: .ascii)
    let box = try! XCTUnwrap(g.pane("help"), g.text)
    let boxText = (box.y..<box.y + box.height).map { String(g.rowText($0).dropFirst(box.x).prefix(box.width)) }
      .joined(separator: "\n")
    XCTAssertTrue(boxText.contains("... "), boxText)
    XCTAssertTrue(boxText.unicodeScalars.allSatisfy(\.isASCII), boxText)
    s.showHelp = false
    s.confirmingStop = true
    g = render(h, s, 80, 24)
    XCTAssertTrue(g.text.contains("y stop  /  n keep running"), g.text)
  }

  func testAsciiFallbackWritesOnlyAscii() {
    let (h, _) = history()
    for v in ViewKind.allCases {
      var s = AppState()
      s.view = v
      let g = render(h, s, 120, 40, glyphs: .ascii)
      XCTAssertTrue(g.cells.allSatisfy { $0.scalar.isASCII }, "\(v): non-ASCII in \(g.text)")
    }
    // the job picker, empty and with a row
    let empty = JobPicker.render([], selected: 0, width: 100, height: 12, glyphs: .ascii)
    XCTAssertTrue(empty.text.contains("`tptop launch -- ...`"), empty.text)
    XCTAssertTrue(empty.text.contains("^/v select"), empty.text)
    let row = JobListRow(name: "j1", state: "running", grid: "t2×d1", step: "3/10", loss: "4.1", age: "5s", attachable: true)
    let one = JobPicker.render([row], selected: 0, width: 100, height: 12, glyphs: .ascii)
    XCTAssertTrue(one.text.contains("t2xd1"), one.text)
    XCTAssertTrue(one.cells.allSatisfy { $0.scalar.isASCII })
    XCTAssertTrue(render(h, AppState(), 40, 10, glyphs: .ascii).text.contains("needs 60x16, have 40x10"))
  }

  /// Table cells pad to their width; a cut text ends in a mark instead of reading as a shorter
  /// value ("vocab rows 0–127" must not become "vocab rows 0").
  func testFitPadsAndMarksCutText() {
    XCTAssertEqual(Format.fit("abc", 5), "abc  ")
    XCTAssertEqual(Format.fit("abc", 5, right: true), "  abc")
    XCTAssertEqual(Format.fit("abcde", 5), "abcde")
    XCTAssertEqual(Format.fit("vocab rows 0–127 of 256", 13), "vocab rows 0…")
    // an ASCII grid writes the mark as "~"
    var ascii = CellGrid(width: 13, height: 1, glyphs: .ascii)
    ascii.put(Format.fit("vocab rows 0-127", 13), x: 0, y: 0)
    XCTAssertEqual(ascii.text, "vocab rows 0~")
    // the shard view at the 60-column minimum: its tp0 slice column cuts "vocab rows 0-31 of 65"
    let (h, _) = history(tp: 2)
    var s = AppState()
    s.view = .shards
    let g = render(h, s, 60, 16, glyphs: .ascii)
    XCTAssertTrue(g.text.contains(" vocab row~ "), "the cut slice cell ends in the mark:\n\(g.text)")
  }

  /// The shard detail pane keeps whole norm columns: on a narrow pane it leaves out upd/w and
  /// |g| rather than cut |w| short.
  func testShardNormColumnsAreWholeOrAbsent() {
    let (h, src) = history(tp: 2)
    var p = src.poll()
    p.shardStats = (0..<2).map { ShardStats(tensor: 0, rank: $0, step: 120, norms: TensorNorms(weightNorm: 8.9337, gradNorm: 0.01234, updateRatio: 1.2e-3)) }
    h.ingest(p)
    var s = AppState()
    s.view = .shards
    let wide = render(h, s, 200, 60).text
    for k in ["|w|", "|g|", "upd/w", "8.934", "0.012", "1.2e-03"] { XCTAssertTrue(wide.contains(k), "\(k):\n\(wide)") }
    let narrow = render(h, s, 60, 16)
    let text = narrow.text
    XCTAssertTrue(text.contains("|w|") && text.contains("8.934"), text)
    XCTAssertFalse(text.contains("8.93…") || text.contains("|w…"), text)
    XCTAssertFalse(text.contains("upd/w"), "no room for upd/w at 60 columns:\n\(text)")
  }

  func testDiffWritesOnlyChangedCells() {
    var a = CellGrid(width: 20, height: 3)
    a.put("hello", x: 0, y: 0)
    XCTAssertEqual(a.changedRuns(since: nil).reduce(0) { $0 + $1.scalars.count }, 60)
    var b = a
    b.put("j", x: 0, y: 0)
    b.put("X", x: 10, y: 2, style: .error)
    let runs = b.changedRuns(since: a)
    XCTAssertEqual(runs.count, 2)
    XCTAssertEqual(runs[0], CellRun(x: 0, y: 0, style: .normal, scalars: ["j"]))
    XCTAssertEqual(runs[1], CellRun(x: 10, y: 2, style: .error, scalars: ["X"]))
    XCTAssertTrue(b.changedRuns(since: b).isEmpty)
  }

  func testSmoothingIsTensorBoardDebiasedEMA() {
    let v = [4.0, 2.0, 2.0]
    let s = DashboardModel.smooth(v, weight: 0.5)
    XCTAssertEqual(s[0], 4.0, accuracy: 1e-12)  // debiased: first value unchanged
    XCTAssertEqual(s[1], (0.5 * 2 + 0.25 * 4) / 0.75, accuracy: 1e-12)
    XCTAssertEqual(DashboardModel.smooth(v, weight: 0), v)
  }

  func testLayoutInspectorDrawsEachRanksBand() throws {
    let (h, _) = history(tp: 2)
    var s = AppState()
    s.view = .shards
    s.selectedTensor = 0  // wte, vocab split: horizontal bands
    let g = render(h, s, 200, 60)
    let grid = try XCTUnwrap(g.pane("tensor grid"))
    var styles = Set<Style>()
    for y in grid.y + 1..<grid.maxY - 2 { styles.insert(g[grid.x + 2, y].style) }
    XCTAssertTrue(styles.contains(.rank(0)) && styles.contains(.rank(1)), "\(styles)")
  }
}

/// The run's features in the header, and under the distributed optimizer the Shards view's
/// per-DP-rank slices of each tensor's optimizer state.
final class FeatureRenderTests: XCTestCase {

  func history(tp: Int, dp: Int, features: RunFeatures) -> JobHistory {
    let src = SyntheticSource(name: "feat", tp: tp, dp: dp, stepsPerPoll: 1)
    var job = src.job
    job.features = features
    let h = JobHistory(job: job)
    for _ in 0..<20 { h.ingest(src.poll()) }
    return h
  }

  func render(_ h: JobHistory, _ state: AppState, _ w: Int, _ hgt: Int) -> CellGrid {
    Renderer.render(DashboardModel(history: h, state: state, themeName: "default"), width: w, height: hgt)
  }

  /// The header's tokens/s is the job's: d × a replica's rate, also when only some replicas are
  /// seen (another node's namespace holds only that node's ranks).
  func testJobThroughputCountsEveryReplica() {
    let src = SyntheticSource(name: "tps", tp: 2, dp: 2, stepsPerPoll: 1)
    let all = JobHistory(job: src.job), part = JobHistory(job: src.job)
    for _ in 0..<20 {
      let p = src.poll()
      all.ingest(p)
      var seen = p
      // ranks 0 and 1 (replica 0) live on the other node: never attached, no records
      seen.steps = p.steps.enumerated().map { r, list in r < 2 ? [] : list }
      seen.ranks = p.ranks.map { r in r.rank < 2 ? RankHealth(rank: r.rank, pid: 0, host: "?", state: .starting, heartbeatAge: .infinity) : r }
      part.ingest(seen)
    }
    let full = DashboardModel(history: all, state: AppState(), themeName: "default")
    let rates = full.rows.filter { $0.tp == 0 }.map { $0.tokensPerSecond! }
    XCTAssertEqual(full.header.tokensPerSecond!, rates.reduce(0, +), accuracy: 1e-6)
    let partial = DashboardModel(history: part, state: AppState(), themeName: "default")
    XCTAssertEqual(partial.header.tokensPerSecond!, 2 * rates[1], accuracy: 1e-6)
    XCTAssertEqual(DashboardModel.jobState(part).0, "running", "ranks that never attached say nothing")
  }

  func testHeaderNamesTheActiveFeatures() {
    let all = history(tp: 2, dp: 2, features: RunFeatures(sequenceParallel: true, distributedOptimizer: true, recompute: .selective))
    let header = render(all, AppState(), 160, 40).rowText(0)
    XCTAssertTrue(header.contains("t2×d2  SP DistOpt recompute=selective  ● running"), header)
    let one = render(history(tp: 2, dp: 2, features: RunFeatures(distributedOptimizer: true)), AppState(), 160, 40).rowText(0)
    XCTAssertTrue(one.contains("t2×d2  DistOpt  ●"), one)
    let none = render(history(tp: 2, dp: 2, features: RunFeatures()), AppState(), 160, 40).rowText(0)
    XCTAssertTrue(none.contains("t2×d2  ●"), none)
    XCTAssertFalse(none.contains("DistOpt"), none)
    let overlap = history(tp: 2, dp: 2, features: RunFeatures(sequenceParallel: true, overlapGradReduce: true, overlapTP: true))
    let wide = render(overlap, AppState(), 160, 40).rowText(0)
    XCTAssertTrue(wide.contains("t2×d2  SP OverlapGrad OverlapTP  ● running"), wide)
    // on a narrow terminal the run's state still shows
    let narrow = render(overlap, AppState(), 80, 24).rowText(0)
    XCTAssertTrue(narrow.contains("●"), narrow)
  }

  func testMemoryPanelShowsTheFourCategoriesAndOther() {
    var s = AppState()
    s.view = .rank
    let text = render(history(tp: 2, dp: 2, features: RunFeatures(distributedOptimizer: true)), s, 120, 40).text
    for label in ["params", "grads", "optimizer", "activations", "other", "RSS"] { XCTAssertTrue(text.contains(label), label) }
  }

  /// Each world rank's row in the tensor detail says which elements of its TP shard's m and v
  /// it holds: block dpRank of the flat local buffer, padded to a multiple of d, cut to the
  /// tensor (computed here from the shard sizes alone).
  func testShardsViewShowsEachDPRanksOptimizerSlice() {
    let (tp, dp) = (2, 2)
    let h = history(tp: tp, dp: dp, features: RunFeatures(distributedOptimizer: true))
    let tensors = h.job.tensors
    var s = AppState()
    s.view = .shards
    for sel in [0, 4, 15] {
      s.selectedTensor = sel
      let g = render(h, s, 160, 50)
      let rows = (0..<g.height).map(g.rowText)
      for rank in 0..<(tp * dp) {
        let (t, d) = (rank % tp, rank / tp)
        let sizes = tensors.map { $0.localCount(tp: t) }
        let n = sizes.reduce(0, +)
        let block = (n + dp - 1) / dp
        let start = sizes[..<sel].reduce(0, +), end = start + sizes[sel]
        let lo = max(start, d * block), hi = min(end, (d + 1) * block)
        let want = lo < hi ? "dp\(d) m,v \(lo - start)–\(hi - start - 1)" : "dp\(d) m,v none"
        XCTAssertTrue(rows.contains { $0.contains("r\(rank) ") && $0.contains(want) },
                      "\(tensors[sel].name) rank \(rank): \(want)\n\(g.text)")
      }
    }
    // without the distributed optimizer no rank claims a slice
    s.selectedTensor = 4
    let plain = render(history(tp: tp, dp: dp, features: RunFeatures()), s, 160, 50).text
    XCTAssertFalse(plain.contains("m,v"), plain)
  }
}

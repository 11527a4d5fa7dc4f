import XCTest
import JobSchema
@testable import Dashboard
import JobControl

/// Keys and state transitions, and the app loop against a synthetic source.
final class StateTests: XCTestCase {
  func press(_ s: inout AppState, _ k: Key, desired: DesiredState = .run) -> [AppRequest] {
    s.handle(k, worldSize: 4, tensorCount: 16, desired: desired, now: 0)
  }

  func testViewKeys() {
    var s = AppState()
    for (k, v) in [("2", ViewKind.rank), ("3", .comm), ("4", .shards), ("5", .events), ("1", .overview)] {
      _ = press(&s, .char(Character(k)))
      XCTAssertEqual(s.view, v)
    }
    _ = press(&s, .tab)
    XCTAssertEqual(s.view, .rank)
    _ = press(&s, .backTab)
    _ = press(&s, .backTab)
    XCTAssertEqual(s.view, .events)
    _ = press(&s, .char("?"))
    XCTAssertTrue(s.showHelp)
    _ = press(&s, .escape)
    XCTAssertFalse(s.showHelp)
  }

  func testRankAndTensorSelection() {
    var s = AppState()
    _ = press(&s, .left)
    XCTAssertEqual(s.selectedRank, 3)
    _ = press(&s, .right)
    _ = press(&s, .right)
    XCTAssertEqual(s.selectedRank, 1)
    s.view = .shards
    for _ in 0..<20 { _ = press(&s, .down) }
    XCTAssertEqual(s.selectedTensor, 15)
    _ = press(&s, .home)
    XCTAssertEqual(s.selectedTensor, 0)
  }

  func testChartKeys() {
    var s = AppState()
    XCTAssertEqual(s.smoothing, 0.6)
    _ = press(&s, .char("s"))
    XCTAssertEqual(s.smoothing, 0.9)
    _ = press(&s, .char("s")); _ = press(&s, .char("s"))
    XCTAssertEqual(s.smoothing, 0)
    _ = press(&s, .char("l"))
    XCTAssertTrue(s.logY)
    _ = press(&s, .char("m"))
    XCTAssertTrue(s.perRankLines)
    XCTAssertEqual(press(&s, .char("t")), [.cycleTheme])
    XCTAssertEqual(press(&s, .char("q")), [.quit])
  }

  func testControlKeys() {
    var s = AppState()
    XCTAssertEqual(press(&s, .char("p")), [.setDesired(.pause)])
    XCTAssertEqual(press(&s, .char("p"), desired: .pause), [.setDesired(.run)])
    XCTAssertEqual(press(&s, .char("c")), [.checkpoint])
    // S asks first; anything but y cancels.
    XCTAssertEqual(press(&s, .char("S")), [])
    XCTAssertTrue(s.confirmingStop)
    XCTAssertEqual(press(&s, .char("n")), [])
    XCTAssertFalse(s.confirmingStop)
    _ = press(&s, .char("S"))
    XCTAssertEqual(press(&s, .char("y")), [.setDesired(.stop)])
  }

  func testReadonlyDisablesEveryControlKey() {
    var s = AppState(readonly: true)
    for k in ["p", "c", "S", " "] {
      XCTAssertEqual(press(&s, .char(Character(k))), [], k)
      XCTAssertFalse(s.confirmingStop)
      XCTAssertTrue(s.message!.text.contains("read-only"))
    }
  }

  func testMessagesExpire() {
    var s = AppState()
    s.say("hi", .dim, 10, seconds: 2)
    XCTAssertFalse(s.expire(now: 11))
    XCTAssertTrue(s.expire(now: 12.5))
    XCTAssertNil(s.message)
  }

  func testAppLoopPausesResumesAndStops() {
    let src = SyntheticSource(name: "loop", tp: 2, stepsPerPoll: 1)
    let backend = CaptureBackend(width: 100, height: 30)
    let app = DashboardApp(source: src, backend: backend, library: ThemeLibrary(directories: []), theme: .builtIn,
                           options: DashboardOptions(refresh: 0.05, sampleInterval: 0.01))
    app.run(duration: 0.3)
    XCTAssertGreaterThan(app.history.latestStep, 3)
    XCTAssertTrue(backend.frame!.rowText(0).contains("running"))
    XCTAssertTrue(app.handle(.char("p")))
    // the header says so at once, before the next poll shows any rank paused
    XCTAssertEqual(DashboardModel.jobState(app.history).0, "pausing…")
    app.sample()
    let paused = app.history.latestStep
    app.run(duration: 0.2)
    XCTAssertEqual(app.history.latestStep, paused)
    XCTAssertTrue(backend.frame!.rowText(0).contains("paused"), backend.frame!.rowText(0))
    // the status line no longer says "pause requested" once every rank has paused
    XCTAssertEqual(app.state.message?.text, "paused at step \(paused) on every rank")
    XCTAssertTrue(app.handle(.char("p")))
    app.run(duration: 0.2)
    XCTAssertGreaterThan(app.history.latestStep, paused)
    app.handle(.char("S"))
    app.handle(.char("y"))
    app.sample()
    XCTAssertEqual(app.history.desired, .stop)
    XCTAssertFalse(app.handle(.char("q")))
    // Theme cycling reaches the backend.
    app.handle(.char("t"))
    XCTAssertNotNil(backend.theme)
  }

  func testUnchangedFramesAreNotRedrawn() {
    let src = SyntheticSource(name: "idle", tp: 2, stepsPerPoll: 1)
    try? src.setDesired(.pause)
    let backend = CaptureBackend(width: 80, height: 24)
    let app = DashboardApp(source: src, backend: backend, library: ThemeLibrary(directories: []), theme: .builtIn,
                           options: DashboardOptions(refresh: 0.02, sampleInterval: 0.01))
    app.run(duration: 0.4)
    // A paused job with nothing new: the first frame (and at most one more), so about one
    // screenful of cells in all although the refresh would allow twenty frames.
    XCTAssertLessThanOrEqual(app.framesRendered, 2)
    XCTAssertLessThan(backend.cellsWritten, 80 * 24 + 200)
  }

  func testResizeRendersAtNewSize() {
    let src = SyntheticSource(name: "resize", tp: 2)
    let backend = CaptureBackend(width: 120, height: 40)
    let app = DashboardApp(source: src, backend: backend, library: ThemeLibrary(directories: []), theme: .builtIn,
                           options: DashboardOptions(refresh: 5, sampleInterval: 0.01))
    app.run(duration: 0.05)
    backend.resize(width: 40, height: 10)
    app.run(duration: 0.05)
    XCTAssertEqual(backend.frame!.width, 40)
    XCTAssertTrue(backend.frame!.text.contains("have 40×10"))
    backend.resize(width: 80, height: 24)
    app.run(duration: 0.05)
    XCTAssertTrue(backend.frame!.rowText(0).contains("resize"))
  }

  func testLaunchPlan() throws {
    XCTAssertTrue(try LaunchPlan.resolve(np: nil, tp: 2, dp: nil) == (2, 2, 1))
    XCTAssertTrue(try LaunchPlan.resolve(np: 4, tp: 2, dp: nil) == (4, 2, 2))
    XCTAssertTrue(try LaunchPlan.resolve(np: 4, tp: nil, dp: nil) == (4, 4, 1))
    XCTAssertThrowsError(try LaunchPlan.resolve(np: 3, tp: 2, dp: nil))
    XCTAssertThrowsError(try LaunchPlan.resolve(np: 0, tp: nil, dp: nil))
    let plan = LaunchPlan(np: 4, tp: 2, dp: 2, hostfile: nil, job: "j1", trainArguments: ["--steps", "5"])
    XCTAssertEqual(plan.mpirunArguments(tptrain: "/x/tptrain", root: true, cores: 2),
                   ["-np", "4", "--allow-run-as-root", "--oversubscribe", "/x/tptrain", "--tp", "2", "--dp", "2", "--job", "j1", "--steps", "5"])
    XCTAssertEqual(plan.mpirunArguments(tptrain: "t", root: false, cores: 8), ["-np", "4", "t", "--tp", "2", "--dp", "2", "--job", "j1", "--steps", "5"])
  }
}

/// A failed rank: named in the header, with mpirun's report of which rank died first.
final class FailureTests: XCTestCase {
  func testFailedRankIsNamedFromTheLog() throws {
    let path = NSTemporaryDirectory() + "tptop-fail-\(getpid()).log"
    defer { unlink(path) }
    try "step 1\n".write(toFile: path, atomically: true, encoding: .utf8)
    let src = SyntheticSource(name: "fail", tp: 2, logPath: path)
    let h = JobHistory(job: src.job)
    h.ingest(src.poll())
    try ("step 1\nmpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed).\n")
      .write(toFile: path, atomically: true, encoding: .utf8)
    var p = src.poll()
    p.ranks = p.ranks.map { var r = $0; r.state = .failed; r.exitStatus = 137; r.heartbeatAge = 6; return r }
    h.ingest(p)
    XCTAssertEqual(h.culprit?.rank, 1)
    let m = DashboardModel(history: h, state: AppState(), themeName: "default")
    XCTAssertEqual(m.header.state, "failed (rank 1)")
    XCTAssertTrue(h.events.suffix(5).contains { $0.text.contains("rank 1 exited on signal 9") })
    XCTAssertTrue(h.events.suffix(5).contains { $0.text.contains("rank 0 failed (exit status 137, last heartbeat 6.0s ago)") })
    var s = AppState()
    s.view = .rank
    s.selectedRank = 1
    let g = Renderer.render(m, width: 100, height: 30)
    XCTAssertTrue(g.rowText(0).contains("failed (rank 1)"))
    XCTAssertTrue(Renderer.render(DashboardModel(history: h, state: s, themeName: ""), width: 100, height: 30).text.contains("exit 137"))
  }

  /// mpirun's other form of report (a rank that exited with a code) names the culprit too.
  func testFailedRankIsNamedFromAnExitCodeReport() throws {
    let path = NSTemporaryDirectory() + "tptop-fail-code-\(getpid()).log"
    defer { unlink(path) }
    let src = SyntheticSource(name: "fail-code", tp: 2, logPath: path)
    try "step 1\n  Process name: [[2795,1],1]\n  Exit code:    3\n".write(toFile: path, atomically: true, encoding: .utf8)
    let h = JobHistory(job: src.job)
    h.ingest(src.poll())
    XCTAssertEqual(h.culprit?.rank, 1)
    XCTAssertEqual(h.culprit?.text, "exited with code 3")
    XCTAssertTrue(h.events.suffix(5).contains { $0.text == "mpirun: rank 1 exited with code 3" })
  }
}

import Foundation
import JobControl
import Telemetry
import TestSupport
import XCTest

/// The dashboard in a real terminal (tmux with its own socket and a fixed size) attached to a real
/// two-rank job started with `tptop launch`: both ranks' rows, a falling loss, pause and resume
/// on every rank, the shard view, detach with the job still running, attach again, stop.
///
/// Needs tmux, mpirun, and the tptop and tptrain binaries next to the test bundle (or in
/// $TPTOP_E2E_BIN_DIR, e.g. .build/release for speed); skips naming what is missing.
final class EndToEndTests: XCTestCase {
  var socket = ""
  var binDir = ""
  var job = ""
  var logDir = ""

  static func which(_ name: String) -> String? { Executables.find(name, nextToSelf: false) }

  /// Runs a command and returns its status and output. Uses posix_spawn and waitpid with the
  /// output in a file: `tmux new-session` leaves a daemon behind that holds inherited
  /// descriptors, which stalls pipe- and Process-based helpers.
  @discardableResult
  static func sh(_ args: [String]) -> (Int32, String) {
    let path = NSTemporaryDirectory() + "tptop-e2e-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { unlink(path) }
    guard case .success(let pid) = Spawn.start("/usr/bin/env", ["/usr/bin/env"] + args, outputPath: path, output: .truncate,
                                                newSession: false) else { return (-1, "spawn failed") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    return ((status >> 8) & 0xFF, text)
  }

  func tmux(_ args: String...) -> String { EndToEndTests.sh(["tmux", "-L", socket] + args).1 }
  func screen() -> String { tmux("capture-pane", "-p", "-t", "e2e") }
  func keys(_ k: String...) { _ = EndToEndTests.sh(["tmux", "-L", socket, "send-keys", "-t", "e2e"] + k) }

  /// Polls the screen until `ok` holds, failing with the last screen and the job log after `timeout`.
  @discardableResult
  /// Waits until both ranks' rows read "running" past step 0; returns that screen.
  func waitForBothRanksRunning(_ what: String) throws -> String {
    try waitFor(what, timeout: 180) { s in
      let rows = EndToEndTests.rankRows(s)
      return rows[0]?.0 == "running" && rows[1]?.0 == "running" && (rows[0]?.1 ?? 0) > 0
    }
  }

  /// Waits until, `steps` or more steps after `screen`, the smoothed loss shown is below the one
  /// `screen` shows; returns that screen.
  func waitForLossToFall(_ what: String, from screen: String, steps: Int, timeout: Double) throws -> String {
    let firstLoss = try XCTUnwrap(EndToEndTests.shownLoss(screen), screen)
    let firstStep = try XCTUnwrap(EndToEndTests.rankRows(screen)[0]?.1, screen)
    return try waitFor(what, timeout: timeout) { s in
      guard let l = EndToEndTests.shownLoss(s), let st = EndToEndTests.rankRows(s)[0]?.1 else { return false }
      return st >= firstStep + steps && l < firstLoss
    }
  }

  @discardableResult
  func waitFor(_ what: String, timeout: Double = 60, _ ok: (String) -> Bool) throws -> String {
    let start = Date()
    var s = ""
    while Date().timeIntervalSince(start) < timeout {
      s = screen()
      if ok(s) { return s }
      usleep(200_000)
    }
    let log = (try? String(contentsOfFile: "\(logDir)/\(job).log", encoding: .utf8)) ?? "(no log)"
    XCTFail("timed out waiting for \(what). Screen:\n\(s)\nJob log tail:\n\(log.suffix(2000))")
    throw XCTSkip("aborted after failure")
  }

  /// (state, step) of each rank from the Overview table rows ("│▶0    0,0   host:pid  state  step …").
  static func rankRows(_ s: String) -> [Int: (String, Int)] {
    var out: [Int: (String, Int)] = [:]
    let re = try! NSRegularExpression(pattern: #"│.(\d+)\s+\d+,\d+\s+\S+\s+(\w+)\s+(\d+)\s"#)
    for line in s.split(separator: "\n").map(String.init) {
      let ns = line as NSString
      if let m = re.firstMatch(in: line, range: NSRange(location: 0, length: ns.length)) {
        out[Int(ns.substring(with: m.range(at: 1)))!] = (ns.substring(with: m.range(at: 2)), Int(ns.substring(with: m.range(at: 3)))!)
      }
    }
    return out
  }

  /// The smoothed latest loss shown in the chart's frame (" now 3.350 ").
  static func shownLoss(_ s: String) -> Double? {
    guard let r = s.range(of: #"now ([0-9.]+)"#, options: .regularExpression) else { return nil }
    return Double(s[r].dropFirst(4))
  }

  override func setUpWithError() throws {
    let env = ProcessInfo.processInfo.environment
    let selfDir = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]).deletingLastPathComponent().path
    binDir = env["TPTOP_E2E_BIN_DIR"] ?? selfDir
    var missing: [String] = []
    if EndToEndTests.which("tmux") == nil { missing.append("tmux (not on PATH)") }
    if EndToEndTests.which("mpirun") == nil { missing.append("mpirun (not on PATH)") }
    for b in ["tptop", "tptrain"] where !FileManager.default.isExecutableFile(atPath: "\(binDir)/\(b)") {
      missing.append("\(binDir)/\(b) (build it: swift build --product \(b))")
    }
    if missing.isEmpty {
      let help = EndToEndTests.sh(["\(binDir)/tptrain", "--help"]).1
      if !help.contains("--job") { missing.append("tptrain --job support (not in `tptrain --help`)") }
    }
    if !missing.isEmpty { throw MissingTool.error("end-to-end dashboard test needs: " + missing.joined(separator: "; ")) }
    socket = "tptop-e2e-\(getpid())"
    job = "e2e-dash-\(getpid())"
    logDir = NSTemporaryDirectory() + "tptop-e2e-\(getpid())"
    try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
  }

  override func tearDown() {
    // Stop and reap whatever is left: ranks by pid from the segment, then the segment itself.
    if !job.isEmpty, let r = try? JobReader(job: job, in: .default) {
      _ = try? r.request(.stop)
      usleep(1_000_000)
      for s in r.ranks() where s.pid > 0 && processAlive(s.pid) { kill(s.pid, SIGTERM) }
    }
    if !socket.isEmpty { _ = tmux("kill-server") }
    if !job.isEmpty { try? SegmentWriter.remove(job: job, in: .default) }
    if !logDir.isEmpty { try? FileManager.default.removeItem(atPath: logDir) }
  }

  /// A shell in a fixed-size 120×40 terminal (so the pane survives tptop exiting); returns the
  /// tptop path to type.
  func startShell() -> String {
    // the dashboard's remembered settings go to the test's own directory, not the user's
    _ = tmux("new-session", "-d", "-s", "e2e", "-x", "120", "-y", "40",
             "env TPTOP_LOG_DIR=\(logDir) XDG_CONFIG_HOME=\(logDir) TERM=xterm-256color LANG=C.UTF-8 bash --norc --noprofile")
    usleep(300_000)
    return "\(binDir)/tptop"
  }

  func testLaunchPauseResumeShardsDetachAttachStop() throws {
    let tptop = startShell()
    keys("\(tptop) launch --np 2 --tp 2 --job \(job) --refresh 0.2 -- --model tiny --batch 2 --seq 16 --steps 1000000 --quiet", "Enter")

    // Both ranks' rows, running.
    var s = try waitForBothRanksRunning("both ranks running")
    XCTAssertTrue(s.contains(job))
    XCTAssertTrue(s.contains("t2×d1"))

    // A falling loss: the smoothed loss shown later is below the first one seen.
    s = try waitForLossToFall("loss to fall", from: s, steps: 30, timeout: 120)

    // p pauses every rank at the same step; the step stops advancing.
    keys("p")
    s = try waitFor("every rank paused", timeout: 60) { s in
      let rows = EndToEndTests.rankRows(s)
      return s.contains("● paused") && rows[0]?.0 == "paused" && rows[1]?.0 == "paused"
    }
    let pausedRows = EndToEndTests.rankRows(s)
    XCTAssertEqual(pausedRows[0]!.1, pausedRows[1]!.1, "ranks paused at different steps:\n\(s)")
    usleep(2_000_000)
    s = screen()
    let still = EndToEndTests.rankRows(s)
    XCTAssertEqual(still[0]!.1, pausedRows[0]!.1, s)
    XCTAssertEqual(still[1]!.1, pausedRows[1]!.1, s)

    // p again resumes: every rank advances.
    keys("p")
    s = try waitFor("every rank advancing again", timeout: 60) { s in
      let rows = EndToEndTests.rankRows(s)
      return s.contains("● running") && (rows[0]?.1 ?? 0) > pausedRows[0]!.1 + 2 && (rows[1]?.1 ?? 0) > pausedRows[1]!.1 + 2
    }

    // The shard view lists each rank's slices.
    keys("4")
    s = try waitFor("the shard view", timeout: 20) { $0.contains("parameter tensors") }
    XCTAssertTrue(s.contains("tp0 slice") && s.contains("tp1 slice"), s)
    XCTAssertTrue(s.contains("qkvw"), s)
    XCTAssertTrue(s.contains("heads 0–1 of 4") && s.contains("heads 2–3 of 4"), s)

    // q detaches; the job keeps running.
    keys("q")
    s = try waitFor("detach message", timeout: 20) { $0.contains("detached from \(self.job)") }
    let reader = try JobReader(job: job, in: .default)
    let before = reader.summary().step
    usleep(1_500_000)
    let after = reader.summary()
    XCTAssertEqual(after.phase, .running)
    XCTAssertGreaterThan(after.step, before, "the job stopped advancing after detach")
    let ls = EndToEndTests.sh([tptop, "ls"]).1
    XCTAssertTrue(ls.contains(job), ls)

    // Attach again, then stop the job with S and y.
    keys("clear; \(tptop) attach \(job) --refresh 0.2", "Enter")
    s = try waitFor("reattached", timeout: 30) { s in
      EndToEndTests.rankRows(s)[0]?.0 == "running" && s.contains("● running")
    }
    keys("S")
    // the prompt says the stop is final
    try waitFor("stop confirmation", timeout: 10) { $0.contains("for good") && $0.contains("y stop") }
    keys("y")
    try waitFor("the job to stop", timeout: 60) { s in
      let rows = EndToEndTests.rankRows(s)
      // one word for the state: ranks of a job stopped before its last step read stopped
      return rows[0]?.0 == "stopped" && rows[1]?.0 == "stopped"
    }
    // the header says the job stopped (on request, before its last step), not that it finished
    s = try waitFor("the header to say stopped", timeout: 20) { $0.contains("● stopped") }
    XCTAssertFalse(s.split(separator: "\n").first.map(String.init)?.contains("finished") ?? true, s)
    keys("q")
    try waitFor("dashboard to exit", timeout: 20) { $0.contains("left \(self.job)") || $0.contains("detached from \(self.job)") }
  }

  /// A job on two simulated nodes (`tptrain --simulate-nodes 2`): the dashboard in the default
  /// namespace shows all four ranks with their host, groups them by node, pauses and resumes all
  /// of them by key, and marks node 1 lost when its ranks stop.
  func testTwoNodeJobShowsEveryRankPausesByKeyAndMarksALostNode() throws {
    let tptop = startShell()
    addTeardownBlock { [job] in _ = shm_unlink("/tptop@node1." + job) }
    keys("\(tptop) launch --np 4 --tp 2 --dp 2 --job \(job) --refresh 0.2 -- --model tiny --batch 2 --seq 16 --steps 1000000 --quiet --threads 1 --simulate-nodes 2", "Enter")
    var s = try waitFor("all four ranks running", timeout: 180) { s in
      let rows = EndToEndTests.rankRows(s)
      return (0..<4).allSatisfy { rows[$0]?.0 == "running" && (rows[$0]?.1 ?? 0) > 0 }
    }
    XCTAssertTrue(s.contains("ranks on 2 nodes"), s)
    // every row names its host (the host:pid column)
    var name = [CChar](repeating: 0, count: 256)
    gethostname(&name, 255)
    let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let rowLines = s.split(separator: "\n").filter { EndToEndTests.rankRows(String($0)).count == 1 }
    XCTAssertEqual(rowLines.count, 4, s)
    // (a long host name is cut to the column)
    for line in rowLines { XCTAssertTrue(line.contains(String(host.prefix(10))), "no host \(host) in: \(line)") }

    // n groups the table under one heading per node
    keys("n")
    s = try waitFor("node headings", timeout: 20) { $0.contains("node 0 ") && $0.contains("node 1 ") && $0.contains("ranks 2–3  reporting") }

    // p pauses all four ranks, of both nodes, at one step; p again resumes them
    keys("p")
    s = try waitFor("every rank paused", timeout: 60) { s in
      let rows = EndToEndTests.rankRows(s)
      return s.contains("● paused") && (0..<4).allSatisfy { rows[$0]?.0 == "paused" }
    }
    let paused = EndToEndTests.rankRows(s)
    XCTAssertEqual(Set((0..<4).map { paused[$0]!.1 }).count, 1, "ranks paused at different steps:\n\(s)")
    keys("p")
    s = try waitFor("every rank advancing again", timeout: 60) { s in
      let rows = EndToEndTests.rankRows(s)
      return s.contains("● running") && (0..<4).allSatisfy { (rows[$0]?.1 ?? 0) > paused[0]!.1 + 2 }
    }

    // node 1's ranks stop: after the stale limit its rows and heading say LOST
    let reader = try JobReader(job: job, in: .default)
    let victims = reader.ranks().filter { $0.node == 1 }.map(\.pid)
    XCTAssertEqual(victims.count, 2)
    addTeardownBlock { for pid in victims { kill(pid, SIGKILL) } }
    for pid in victims { kill(pid, SIGSTOP) }
    s = try waitFor("node 1 marked lost", timeout: 30) { s in
      let rows = EndToEndTests.rankRows(s)
      return rows[2]?.0 == "LOST" && rows[3]?.0 == "LOST" && rows[0]?.0 == "running" && s.contains("node 1 LOST")
    }
    XCTAssertTrue(s.contains("ranks 2–3  LOST: its ranks stopped reporting"), s)
  }

  /// `tptop demo` itself (the README's run command): the small preset at TP=2 on the bundled
  /// corpus, both ranks running and the loss falling; detach leaves it running.
  func testDemoRunsTheSmallPresetAtTP2() throws {
    let tptop = startShell()
    // a short batch keeps each step quick on a 2-core CI machine
    keys("\(tptop) demo --batch 2 --seq 16 --steps 100000 --refresh 0.2", "Enter")
    let s = try waitForBothRanksRunning("the demo's ranks running")
    // header: " tptop <job>  small L6 H6 C384 B2 T16  t2×d1  ● running …"
    let header = s.split(separator: "\n").first.map(String.init) ?? ""
    let words = header.split(separator: " ").map(String.init)
    job = words.count > 1 ? words[1] : ""
    XCTAssertTrue(job.hasPrefix("job-"), header)
    XCTAssertTrue(header.contains("small L6 H6 C384"), header)
    XCTAssertTrue(header.contains("t2×d1"), header)
    _ = try waitForLossToFall("the demo's loss to fall", from: s, steps: 20, timeout: 180)
    keys("q")
    _ = try waitFor("detach message", timeout: 20) { $0.contains("detached from \(self.job)") }
    XCTAssertEqual(try JobReader(job: job, in: .default).summary().phase, .running)
    let stop = EndToEndTests.sh([tptop, "stop", job])
    XCTAssertEqual(stop.0, 0, stop.1)
  }
}

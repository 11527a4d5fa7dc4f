import Foundation
import Glibc
import JobSchema
import TestSupport
import XCTest
import TelemetryFixtures

@testable import RunStore
@testable import Telemetry

/// `tptop runs`, `rm`, `export`, `compare` and `open` on a temporary store, through the built
/// binary; the screens checked in tmux.
final class CommandTests: XCTestCase {
  var store: TempStore!

  override func setUp() { store = TempStore("cmd") }
  override func tearDown() { store.remove() }

  func tptop(_ args: [String], input: String? = nil, environment: [String: String] = [:], tool: String = "tptop") throws
    -> (status: Int32, out: String, err: String)
  {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try BuildProducts.path(tool))
    p.arguments = args
    p.environment = ProcessInfo.processInfo.environment.merging(["TPTOP_RUNS": store.location.directory]) { _, b in b }
      .merging(environment) { _, b in b }
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
    try inp.fileHandleForWriting.close()
    // stderr on a thread, stdout here: a child filling one pipe must never wait on the other
    let errHandle = err.fileHandleForReading
    let errText = ErrText()
    let reader = Thread { errText.set(errHandle.readDataToEndOfFile()) }
    reader.start()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let e = errText.wait()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
  }

  /// A finished run of `steps` steps on `world` ranks with losses `loss(step)`.
  @discardableResult
  func makeRun(_ name: String, started: Double, steps: Int, world: Int = 2, settings: [String: String] = [:],
               loss: (Int) -> Float) throws -> [Float] {
    var h = RunHeader(name: name, job: name, writer: "tptrain", state: "finished", started: started, world: world, tp: world,
                      dp: 1, totalSteps: steps, preset: "tiny", budgetBytes: 1 << 24)
    h.settings = settings
    h.hosts = "hostA"
    let file = try RunFile(location: store.location, header: h, reopen: false)
    let acc = RunAccumulator(world: world, dp: 1, bucketSteps: 1, wallOffset: started)
    var losses: [Float] = []
    for step in 1...steps {
      losses.append(loss(step))
      for rank in 0..<world { acc.add(stepRecord(step: step, rank: rank, loss: loss(step)), nowNs: 0) }
    }
    try file.write(acc.takeBatch(nowNs: 0, final: true), state: "finished", lastStep: acc.lastStep, finalLoss: acc.finalLoss,
                   bestLoss: acc.bestLoss, hosts: "hostA", ended: started + 60)
    return losses
  }

  func testRunsListsFiltersAndRmDeletesOnlyWhenAsked() throws {
    let now = Date().timeIntervalSince1970
    try makeRun("alpha-1", started: now - 3 * 86400, steps: 5) { 3 - Float($0) * 0.1 }
    try makeRun("alpha-2", started: now - 600, steps: 7) { 3 - Float($0) * 0.2 }
    try makeRun("beta", started: now - 60, steps: 3) { 2 + Float($0) }
    _ = FileManager.default.createFile(atPath: store.location.path(run: "broken"), contents: Data(repeating: 7, count: 4096))
    var r = try tptop(["runs", "--plain"])
    XCTAssertEqual(r.status, 0, r.err)
    let rows = r.out.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    XCTAssertEqual(rows.map { $0[0] }, ["broken", "alpha-1", "alpha-2", "beta"])
    XCTAssertEqual(rows[0][1], "unreadable")
    XCTAssertTrue(rows[0][9].contains("broken.sqlite"), rows[0][9])
    XCTAssertEqual(Array(rows[2][1...1]) + Array(rows[2][3...]),
                   ["finished", "1m00s", "7/7", "t2×d1", "tiny", String(format: "%.4f", 3 - 7 * Float(0.2)),
                    String(format: "%.4f", 3 - 7 * Float(0.2)), "hostA"])
    XCTAssertEqual(rows[3][7...8], [String(format: "%.4f", Float(5)), String(format: "%.4f", Float(3))])
    r = try tptop(["runs", "--plain", "alpha", "--since", "1d"])
    XCTAssertEqual(r.out.split(separator: "\n").map { String($0.split(separator: "\t")[0]) }, ["alpha-2"])
    // rm asks; anything but yes deletes nothing
    r = try tptop(["rm", "alpha-1", "beta"], input: "n\n")
    XCTAssertEqual(r.status, 1)
    XCTAssertTrue(store.location.exists(run: "alpha-1") && store.location.exists(run: "beta"))
    r = try tptop(["rm", "alpha-1", "beta"], input: "y\n")
    XCTAssertEqual(r.status, 0, r.err)
    XCTAssertEqual(r.out, "deleted run alpha-1\ndeleted run beta\n")
    r = try tptop(["rm", "nothere", "--yes"])
    XCTAssertEqual(r.status, 1)
    XCTAssertEqual(r.err, "tptop: no stored run named 'nothere' in \(store.location.directory)\n")
    // gc removes segments, never stored runs
    r = try tptop(["--namespace", "st-gc-\(getpid())", "gc"])
    XCTAssertEqual(r.status, 0, r.err)
    XCTAssertEqual(store.location.runNames(), ["alpha-2", "broken"])
  }

  /// `rm` and `gc` take globs as `ls` does; the runs table names its columns for what they hold
  /// and writes the grid as every screen does.
  func testGlobsInRmAndGcAndTheRunsTable() throws {
    let now = Date().timeIntervalSince1970
    for name in ["glob-a", "glob-b", "other"] { try makeRun(name, started: now - 60, steps: 2) { _ in 3 } }
    var r = try tptop(["runs"])
    XCTAssertEqual(r.status, 0, r.err)
    let header = r.out.split(separator: "\n").first.map(String.init) ?? ""
    XCTAssertEqual(header.split(separator: " ", omittingEmptySubsequences: true).map(String.init),
                   ["NAME", "STATE", "START", "DURATION", "STEPS", "GRID", "CONFIG", "LOSS", "BEST", "HOSTS"])
    XCTAssertTrue(r.out.contains(" t2×d1 "), r.out)
    r = try tptop(["rm", "glob-*", "--yes"])
    XCTAssertEqual(r.status, 0, r.err)
    XCTAssertEqual(r.out, "deleted run glob-a\ndeleted run glob-b\n")
    XCTAssertEqual(store.location.runNames(), ["other"])
    r = try tptop(["rm", "nomatch-*", "--yes"])
    XCTAssertEqual(r.status, 1)
    XCTAssertEqual(r.err, "tptop: no stored run matches 'nomatch-*' in \(store.location.directory)\n")
    // gc: two ended jobs of a namespace of their own, removed by one glob, the third kept
    let ns = "st-glob-\(getpid())"
    for job in ["ga", "gb", "keep"] {
      r = try tptop(["--namespace", ns, "synthetic-job", "--job", job, "--ranks", "2", "--tp", "2", "--steps", "2", "--step-ms", "1"], tool: "tptop-dev")
      XCTAssertEqual(r.status, 0, r.err)
    }
    defer { _ = try? tptop(["--namespace", ns, "gc"]) }
    r = try tptop(["--namespace", ns, "gc", "g?"])
    XCTAssertEqual(r.status, 0, r.err)
    XCTAssertEqual(r.out.split(separator: "\n").count, 2, r.out)
    XCTAssertTrue(r.out.contains("ga\n") && r.out.contains("gb\n") && !r.out.contains("keep"), r.out)
    r = try tptop(["--namespace", ns, "ls", "--state", "live,stopped,finished"])
    XCTAssertTrue(r.out.contains("keep ") && !r.out.contains("ga "), r.out)
  }

  /// `export`'s help names all three formats; a name found nowhere says every place it looked.
  func testExportWordsNameEveryFormatAndPlace() throws {
    var r = try tptop(["--help"])
    // the help wraps its lines: words compared with single spaces
    let words = r.out.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    XCTAssertTrue(words.contains("JSON lines, CSV or TensorBoard event files"), r.out)
    r = try tptop(["export", "nosuch-\(getpid())", "--format", "jsonl"])
    XCTAssertEqual(r.status, 1)
    XCTAssertTrue(r.err.contains("/dev/shm/tptop.nosuch-") && r.err.contains("no stored run in \(store.location.directory)"), r.err)
    XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
  }

  /// The export's lines sorted with their wall-clock fields (`unix_ns`, `time`) blanked, and
  /// those `unix_ns` values in the same order.
  static func withoutWallClock(_ text: String, format: String) -> ([String], [Int64]) {
    let rows = text.split(separator: "\n").map { line -> (String, Int64?) in
      if format == "jsonl" {
        guard let r = line.range(of: #""unix_ns":-?[0-9]+,"time":"[^"]*""#, options: .regularExpression) else { return (String(line), nil) }
        let field = line[r].dropFirst(10).prefix { $0 != "," }
        return (line.replacingCharacters(in: r, with: ""), Int64(field))
      }
      // CSV: the unix_ns cell followed by the time cell (a quoted text cell may hold commas)
      guard let r = line.range(of: #",-?[0-9]+,[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z(,|$)"#, options: .regularExpression)
      else { return (String(line), nil) }
      let field = line[r].dropFirst().prefix { $0 != "," }
      return (line.replacingCharacters(in: r, with: ",,," ), Int64(field))
    }.sorted { $0.0 < $1.0 }
    return (rows.map(\.0), rows.compactMap(\.1))
  }

  /// A synthetic job (`world` ranks, t=2) recorded in-process by a started recorder, as world
  /// rank 0 of tptrain records its job; the caller removes the job and finishes the recorder.
  func recordedSyntheticJob(_ tag: String, world: Int, slots: Int, totalSteps: Int,
                            warn: @escaping @Sendable (String) -> Void = { XCTFail($0) }) throws -> (SyntheticJob, RunRecorder) {
    let job = uniqueJob(tag)
    let synthetic = try SyntheticJob(job: job, worldSize: world, tp: 2, slotCount: slots, totalSteps: totalSteps)
    var h = RunHeader(name: job, job: job, writer: "tptrain", state: "running", started: Date().timeIntervalSince1970,
                      world: world, tp: 2, dp: world / 2, totalSteps: totalSteps, preset: "synthetic", budgetBytes: 1 << 24)
    h.recorderPid = getpid()
    let recorder = try RunRecorder(job: job, in: .default, location: store.location, header: h, reopen: false, warn: warn)
    recorder.start()
    return (synthetic, recorder)
  }

  /// A job recorded in-process from its segment: once the segment is gone, `tptop export` from
  /// the store writes exactly the lines the live export wrote.
  func testExportOfAStoredRunIsTheLiveExport() throws {
    let (synthetic, recorder) = try recordedSyntheticJob("exp", world: 4, slots: 256, totalSteps: 40)
    let job = synthetic.description.name
    defer { try? synthetic.remove() }
    for s in 1...40 {
      synthetic.advance(steps: 1)
      if s % 10 == 0 { synthetic.event(.checkpointSaved, text: "ck/step_\(s), \"quoted\"") }
      if s % 7 == 0 { usleep(20_000) }
    }
    synthetic.finish()
    let live = try ["jsonl", "csv"].map { try tptop(["export", job, "--format", $0]) }
    recorder.finish(state: .finished)
    try synthetic.remove()
    for (i, format) in ["jsonl", "csv"].enumerated() {
      XCTAssertEqual(live[i].status, 0, live[i].err)
      XCTAssertEqual(live[i].out.split(separator: "\n").count, (format == "csv" ? 1 : 0) + 4 * 40 + 4 * 4)
      let stored = try tptop(["export", job, "--format", format])
      XCTAssertEqual(stored.status, 0, stored.err)
      // the wall clock of a record is its boot-clock timestamp plus the offset between the two
      // clocks that the recorder measured once: every export of a record, live or stored, jsonl
      // or csv, dates it the same, to the nanosecond
      let (a, at) = Self.withoutWallClock(stored.out, format: format)
      let (b, bt) = Self.withoutWallClock(live[i].out, format: format)
      XCTAssertEqual(a, b)
      XCTAssertEqual(at, bt, "\(format): the stored export's unix_ns against the live one's")
      XCTAssertEqual(at.sorted(), Self.withoutWallClock(live[1 - i].out, format: ["jsonl", "csv"][1 - i]).1.sorted(), "jsonl against csv")
    }
    let run = try StoredRun(location: store.location, name: job)
    XCTAssertEqual(run.header.state, "finished")
    XCTAssertEqual(try run.seriesSteps(), Array(1...40))
    // the shard layout of the segment's job description is stored with the run
    XCTAssertEqual(run.header.tensors, synthetic.description.shards)
    XCTAssertFalse(run.header.tensors.isEmpty)
    // the export is dated by the clock offset measured when the run was recorded, not by the
    // exporting machine's: after a reboot (the boot clock restarted: an offset 3 days apart)
    // every stored record still reads the wall clock the live export gave it
    let recorded = try XCTUnwrap(run.header.wallMinusBootNs)
    let nowOffset = Int64(bitPattern: telemetryRealtimeNanos()) - Int64(bitPattern: telemetryMonotonicNanos())
    XCTAssertLessThan(abs(recorded - nowOffset), 50_000_000)
    let shift: Int64 = 3 * 86_400 * 1_000_000_000
    let sql = try python("""
      import sqlite3, sys
      db = sqlite3.connect(sys.argv[1])
      db.execute('UPDATE run SET wall_minus_boot_ns = wall_minus_boot_ns + ?', (int(sys.argv[2]),))
      db.commit()
      """, [store.location.path(run: job), String(shift)])
    XCTAssertEqual(sql.status, 0, sql.err)
    let rebooted = try tptop(["export", job, "--format", "jsonl"])
    XCTAssertEqual(rebooted.status, 0, rebooted.err)
    let (_, shifted) = Self.withoutWallClock(rebooted.out, format: "jsonl")
    let (_, liveTimes) = Self.withoutWallClock(live[0].out, format: "jsonl")
    XCTAssertEqual(shifted.count, liveTimes.count)
    for (x, y) in zip(shifted, liveTimes) { XCTAssertLessThan(abs(x - shift - y), 1_000_000, "unix_ns \(x) against \(y) + 3 days") }
    var series: [SeriesRow] = []
    try run.series { series.append($0) }
    XCTAssertTrue(series.allSatisfy { $0.ranks == 4 })
    // tokens are the whole job's: one replica's × d
    XCTAssertEqual(series[0].values[3], Double(SyntheticJob.plausibleRecord(step: 1, rank: 0, model: synthetic.description.model).tokens * 2))
  }

  /// A stored run's export follows `--output`'s rules like a live one's: through a symbolic link
  /// (the link stays, its target gets the records), into /dev/null (it stays a device), /dev/full
  /// in one line with nothing left behind; a regular file is replaced whole.
  func testExportOfAStoredRunWritesThroughLinksAndDevices() throws {
    try makeRun("targets", started: 1_700_000_000, steps: 10) { 4 - Float($0) * 0.1 }
    let dir = store.location.directory
    let target = dir + "/target.jsonl", link = dir + "/link.jsonl"
    try "old\n".write(toFile: target, atomically: false, encoding: .utf8)
    XCTAssertEqual(symlink(target, link), 0)
    let viaLink = try tptop(["export", "targets", "--format", "jsonl", "--output", link])
    XCTAssertEqual(viaLink.status, 0, viaLink.err)
    var st = stat()
    XCTAssertEqual(lstat(link, &st), 0)
    XCTAssertEqual(st.st_mode & S_IFMT, S_IFLNK, "the link stays a link")
    XCTAssertEqual(try String(contentsOfFile: target, encoding: .utf8).split(separator: "\n").count, 20, "its target holds the records")
    let null = try tptop(["export", "targets", "--format", "csv", "--output", "/dev/null"])
    XCTAssertEqual(null.status, 0, null.err)
    XCTAssertEqual(stat("/dev/null", &st), 0)
    XCTAssertEqual(st.st_mode & S_IFMT, S_IFCHR, "/dev/null stays a device")
    let full = try tptop(["export", "targets", "--format", "jsonl", "--output", "/dev/full"])
    XCTAssertNotEqual(full.status, 0)
    XCTAssertEqual(full.err.split(separator: "\n").count, 1, full.err)
    XCTAssertTrue(full.err.contains("No space left on device"), full.err)
    let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
    XCTAssertEqual(files, [], "no temporary file left")
  }

  /// The export of an ended job whose run a later incarnation records (a supervised restart)
  /// writes the stored run, every step of every incarnation, and says so; the rings hold only
  /// the first incarnation's last steps. A stored run of the same name that ended before the
  /// segment was made is another job's: the rings are exported, as for a job still running.
  func testExportOfARestartedJobWritesItsWholeStoredRun() throws {
    let job = uniqueJob("inc")
    let synthetic = try SyntheticJob(job: job, worldSize: 2, tp: 2, slotCount: 16, totalSteps: 60)
    defer { try? synthetic.remove() }
    synthetic.advance(steps: 30)
    synthetic.finish()
    let created = try JobReader(job: job, in: .default).info.creationTime
    // incarnation 1 records run `job`: steps 1–60 of both ranks, still running
    func storedRun(job recorder: String, state: String, started: Double, ended: Double?) throws {
      var h = RunHeader(name: job, job: recorder, writer: "tptrain", state: state, started: started, world: 2, tp: 2,
                        dp: 1, totalSteps: 60, preset: "tiny", budgetBytes: 1 << 24)
      h.incarnations = 2
      let file = try RunFile(location: store.location, header: h, reopen: false)
      let acc = RunAccumulator(world: 2, dp: 1, bucketSteps: 1, wallOffset: started)
      for step in 1...60 { for rank in 0..<2 { acc.add(stepRecord(step: step, rank: rank), nowNs: 0) } }
      try file.write(acc.takeBatch(nowNs: 0, final: false), state: state, lastStep: acc.lastStep, finalLoss: acc.finalLoss,
                     bestLoss: acc.bestLoss, hosts: "hostA", ended: ended)
    }
    try storedRun(job: job + ".r1", state: "running", started: created + 0.2, ended: nil)
    let file = store.location.directory + "-export.jsonl"
    defer { unlink(file) }
    let whole = try tptop(["export", job, "--format", "jsonl", "--output", file])
    XCTAssertEqual(whole.status, 0, whole.err)
    XCTAssertEqual(whole.err, "exported 120 stored records of run \(job) (job \(job) has ended: every step of its 2 incarnations, "
                     + "where its segment holds its last steps only) to \(file)\n")
    let written = try String(contentsOfFile: file, encoding: .utf8)
    let steps = written.split(separator: "\n").filter { $0.contains("\"type\":\"step\"") }
    XCTAssertEqual(steps.count, 2 * 60, "every step of both ranks, the second incarnation's too")

    // an older run of the same name, ended before this segment was made: not this job's
    try store.location.remove(run: job)
    try storedRun(job: job, state: "finished", started: created - 3600, ended: created - 60)
    let rings = try tptop(["export", job, "--format", "jsonl"])
    XCTAssertEqual(rings.status, 0, rings.err)
    XCTAssertFalse(rings.err.contains("has ended"), rings.err)
    XCTAssertEqual(rings.out.split(separator: "\n").filter { $0.contains("\"type\":\"step\"") }.count, 2 * 16,
                   "the rings: 16 slots of each rank")
  }

  /// `tptop open` on a stored run whose segment is gone: the Shards view lists the tensors of
  /// the job description the recorder stored (plain frames: TERM=dumb, keys typed on stdin).
  func testOpenShowsTheStoredShardLayout() throws {
    let (synthetic, recorder) = try recordedSyntheticJob("shards", world: 2, slots: 64, totalSteps: 5)
    let job = synthetic.description.name
    defer { try? synthetic.remove() }
    synthetic.advance(steps: 5)
    synthetic.finish()
    recorder.finish(state: .finished)
    try synthetic.remove()
    let r = try tptop(["open", job], input: "4\n", environment: ["TERM": "dumb", "COLUMNS": "120", "LINES": "40"])
    XCTAssertEqual(r.status, 0, r.err)
    let frames = Self.frames(r.out, width: 120)
    let shards = try XCTUnwrap(frames.last { $0.contains("parameter tensors") }, r.out.suffix(2000).description)
    XCTAssertFalse(shards.contains("has not published its shard layout"), shards)
    XCTAssertTrue(shards.contains("parameter tensors (\(synthetic.description.shards.count))"), shards)
    for t in synthetic.description.shards { XCTAssertTrue(shards.contains("|\(t.name) "), "\(t.name) missing:\n\(shards)") }
  }

  /// `tptop open`'s Events view reads a stored run's events in time order, not rank by rank as
  /// the store keeps them: rank 1's event of step 2 comes before rank 0's of step 4.
  func testOpenListsTheStoredEventsInTimeOrder() throws {
    let (synthetic, recorder) = try recordedSyntheticJob("evorder", world: 2, slots: 64, totalSteps: 5)
    let job = synthetic.description.name
    defer { try? synthetic.remove() }
    synthetic.advance(steps: 2)
    synthetic.rankWriters[1].writeEvent(.error, step: 2, text: "first-by-time")
    usleep(20_000)
    synthetic.advance(steps: 2)
    synthetic.rankWriters[0].writeEvent(.error, step: 4, text: "second-by-time")
    synthetic.finish()
    recorder.finish(state: .finished)
    try synthetic.remove()
    let r = try tptop(["open", job], input: "5\n", environment: ["TERM": "dumb", "COLUMNS": "120", "LINES": "40"])
    XCTAssertEqual(r.status, 0, r.err)
    let frame = try XCTUnwrap(Self.frames(r.out, width: 120).last { $0.contains("second-by-time") }, r.out.suffix(2000).description)
    let first = try XCTUnwrap(frame.range(of: "first-by-time"), frame)
    let second = try XCTUnwrap(frame.range(of: "second-by-time"), frame)
    XCTAssertLessThan(first.lowerBound, second.lowerBound, "newest last, as the live Events view:\n\(frame)")
  }

  /// A restart of a run that did not finish says so in the run's events: the incarnation that
  /// ended without finishing, at its last step and time, then the resume and its checkpoint.
  func testARestartedRunsEventsTellTheRestart() throws {
    let (first, recorder) = try recordedSyntheticJob("rst", world: 2, slots: 64, totalSteps: 50)
    let job = first.description.name
    first.advance(steps: 12)
    XCTAssertTrue(eventually(10) { ((try? StoredRun(location: self.store.location, name: job))?.header.lastStep ?? 0) >= 12 })
    recorder.finish(state: .failed)
    try first.remove()
    usleep(50_000)
    // the next incarnation, resumed from the checkpoint of step 8, records into the same run
    let second = try SyntheticJob(job: job, worldSize: 2, tp: 2, slotCount: 64, totalSteps: 50)
    defer { try? second.remove() }
    var h = RunHeader(name: job, job: job, writer: "tptrain", state: "running", started: Date().timeIntervalSince1970,
                      world: 2, tp: 2, dp: 1, totalSteps: 50, preset: "synthetic", budgetBytes: 1 << 24)
    h.recorderPid = getpid()
    let again = try RunRecorder(job: job, in: .default, location: store.location, header: h, reopen: true,
                                resumedFrom: ("/ck/step_00000008", 8), warn: { XCTFail($0) })
    again.start()
    second.advance(steps: 3)
    again.finish(state: .finished)
    try second.remove()

    var events: [EventRecord] = []
    let run = try StoredRun(location: store.location, name: job)
    try run.events { events.append($0) }
    XCTAssertEqual(run.header.incarnations, 2)
    XCTAssertEqual(events.map(\.kind), [.error, .resumed], "\(events)")
    XCTAssertEqual(events.map(\.step), [12, 8])
    XCTAssertEqual(events.map(\.text), ["incarnation 0 ended at step 12 without finishing (last recorded: failed)",
                                        "from /ck/step_00000008, incarnation 1"])
    XCTAssertEqual(events.map(\.rank), [-1, -1], "the store's own events, not a rank's")
    // the Events view of `tptop open`, in time order
    let r = try tptop(["open", job], input: "5\n", environment: ["TERM": "dumb", "COLUMNS": "120", "LINES": "40"])
    XCTAssertEqual(r.status, 0, r.err)
    let frame = try XCTUnwrap(Self.frames(r.out, width: 120).last { $0.contains("events (") }, r.out.suffix(2000).description)
    let ended = try XCTUnwrap(frame.range(of: "step     12  tptop    error: incarnation 0 ended at step 12 without finishing"), frame)
    let resumed = try XCTUnwrap(frame.range(of: "step      8  tptop    resumed at step 8: from /ck/step_00000008, incarnation 1"), frame)
    XCTAssertLessThan(ended.lowerBound, resumed.lowerBound, frame)
    // the supervisor's name of an incarnation finds the run every incarnation records into
    let byIncarnation = try tptop(["compare", job + ".r1", "--plain"])
    XCTAssertEqual(byIncarnation.status, 0, byIncarnation.err)
    XCTAssertEqual(byIncarnation.out.split(separator: "\n").first?.split(separator: " ").map(String.init), ["run", job])
    let missing = try tptop(["open", job + "x"])
    XCTAssertNotEqual(missing.status, 0)
    XCTAssertTrue(missing.err.contains("(tptop runs lists them)"), missing.err)
  }

  /// The plain frames `tptop open` or `attach` printed, split at their separator lines.
  static func frames(_ out: String, width: Int) -> [String] {
    out.components(separatedBy: "\n" + String(repeating: "=", count: width) + "\n").filter { !$0.isEmpty }
  }

  /// The loss chart's top border line of a plain frame: its title and the cursor's corner.
  static func lossTitle(_ frame: String) -> String? { frame.split(separator: "\n").first { $0.contains(" loss (") }.map(String.init) }

  /// `tptop open` on a long stored run (5000 steps, one sample per 7 steps on screen): the
  /// cursor moves over the whole history sample by sample and prints the value there; `+`
  /// zooms the charts around it and the title says which steps they show.
  func testOpenCursorAndZoomOverTheWholeHistory() throws {
    let losses = try makeRun("long", started: 1_700_000_000, steps: 5000) { 6 - Float($0) * 0.001 }
    let env = ["TERM": "dumb", "COLUMNS": "160", "LINES": "40"]
    let r = try tptop(["open", "long"], input: "[{+\n", environment: env)
    XCTAssertEqual(r.status, 0, r.err)
    let frames = Self.frames(r.out, width: 160)
    let titles = frames.compactMap(Self.lossTitle)
    // the last frame: the cursor ten samples back from the newest, zoomed ×2 around it
    let last = try XCTUnwrap(titles.last, r.out.suffix(3000).description)
    let corner = try XCTUnwrap(last.range(of: #"step [0-9]+: [0-9.]+"#, options: .regularExpression).map { String(last[$0]) }, last)
    let step = Int(corner.dropFirst(5).prefix { $0 != ":" })!
    XCTAssertLessThan(step, 5000 - 10, "moved by samples of several steps: \(corner)")
    XCTAssertGreaterThan(step, 4800, corner)
    // the value at the cursor is the mean of the losses its sample stands for: near the loss there
    let value = Double(corner.split(separator: " ").last!)!
    XCTAssertEqual(value, Double(losses[step - 1]), accuracy: 0.01, last)
    XCTAssertTrue(last.contains(" x2 "), last)
    // the status line names the steps shown: half the history, around the cursor
    // (the charts' titles say "zoom x2" too; the status line is the one that names the steps)
    let status = try XCTUnwrap(frames.last?.split(separator: "\n").first {
      $0.contains("zoom") && $0.range(of: #"steps [0-9]+.[0-9]+"#, options: .regularExpression) != nil
    }.map(String.init), r.out.suffix(8000).description)
    let zoomed = try XCTUnwrap(status.range(of: #"steps [0-9]+.[0-9]+"#, options: .regularExpression).map { String(status[$0]) }, status)
    let bounds = zoomed.dropFirst(6).split(whereSeparator: { !$0.isNumber }).map { Int($0)! }
    XCTAssertEqual(bounds[1] - bounds[0] + 1, (5000 - 7) / 2 + 1, "half the history is shown: \(zoomed)")
    XCTAssertTrue(bounds[0] <= step && step <= bounds[1], "around the cursor: \(zoomed) \(corner)")
    // before the zoom the charts spanned the whole run, from its first samples
    XCTAssertFalse(titles.dropLast().contains { $0.contains(" x2 ") }, "\(titles)")
  }

  /// Attached late to a live job whose 64-slot rings hold only its last steps, the dashboard's
  /// history starts at the run's first steps, filled in from the run store: the cursor reaches
  /// back to them (without the store it stops at the ring's oldest step, 1937).
  func testAttachingLateBackfillsTheHistoryFromTheStore() throws {
    // (the synthetic job writes faster than any trainer: the recorder may miss a few records,
    // which only thins the backfilled means)
    let (synthetic, recorder) = try recordedSyntheticJob("late", world: 2, slots: 64, totalSteps: 4000, warn: { _ in })
    let job = synthetic.description.name
    defer { try? synthetic.remove() }
    for _ in 0..<(2000 / 16) {
      synthetic.advance(steps: 16)
      usleep(10_000)
    }
    XCTAssertTrue(eventually(20) { ((try? StoredRun(location: self.store.location, name: job))?.header.lastStep ?? 0) >= 2000 })
    let env = ["TERM": "dumb", "COLUMNS": "120", "LINES": "40"]
    // the cursor on the newest step, then 60 × 10 samples back: as far back as the history goes
    let r = try tptop(["attach", job], input: "[" + String(repeating: "{", count: 60) + "\n", environment: env)
    recorder.finish(state: .finished)
    XCTAssertEqual(r.status, 0, r.err)
    let last = try XCTUnwrap(Self.frames(r.out, width: 120).compactMap(Self.lossTitle).last, r.out.suffix(3000).description)
    let corner = try XCTUnwrap(last.range(of: #"step [0-9]+: [0-9.]+"#, options: .regularExpression).map { String(last[$0]) }, last)
    let step = Int(corner.dropFirst(5).prefix { $0 != ":" })!
    XCTAssertLessThan(step, 20, "the history reaches back to the run's first steps: \(corner)")
  }

  func testComparePlainTableAndTheScreensInTmux() throws {
    let a = try makeRun("cmp-a", started: 1_700_000_000, steps: 150, settings: ["lr": "0.001", "batch": "8"]) { 4 - Float($0) * 0.01 }
    let b = try makeRun("cmp-b", started: 1_700_000_100, steps: 120, settings: ["lr": "0.003", "batch": "8"]) {
      $0 == 60 ? 1.5 : 4 - Float($0) * 0.02
    }
    let r = try tptop(["compare", "cmp-a", "cmp-b", "--plain"])
    XCTAssertEqual(r.status, 0, r.err)
    func f(_ v: Double) -> String { String(format: "%.4f", v) }
    func mean(_ xs: ArraySlice<Float>) -> Double { xs.map(Double.init).reduce(0, +) / Double(xs.count) }
    let expected = alignedRows([
      ["run", "cmp-a", "cmp-b"],
      ["final loss", f(Double(a.last!)), f(Double(b.last!))],
      ["best loss", f(Double(a.min()!)), f(Double(b.min()!))],
      ["last-100 mean", f(mean(a.suffix(100))), f(mean(b.suffix(100)))],
      ["steps run", "150", "120"],
      ["lr", "0.001", "0.003"],
    ])
    XCTAssertEqual(r.out, expected.joined(separator: "\n") + "\n")

    guard let tmux = ["/usr/bin/tmux", "/usr/local/bin/tmux"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
      throw MissingTool.error("tmux (make test-deps installs it)")
    }
    let session = "st-cmp-\(getpid())"
    let bin = try BuildProducts.path("tptop")
    // posix_spawn + waitpid, output through a file: a new session's tmux server keeps whatever
    // descriptors it inherits, which stalls pipe- and Process-based helpers
    func tm(_ args: [String]) throws -> String {
      let path = NSTemporaryDirectory() + "st-tmux-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
      defer { unlink(path) }
      let parts: [String] = ([tmux, "-L", session] + args).map { (a: String) -> String in "'" + a.replacingOccurrences(of: "'", with: "'\\''") + "'" }
      let quoted: String = parts.joined(separator: " ")
      let line: String = quoted + " >" + path + " 2>/dev/null </dev/null"
      let words: [String] = ["/bin/sh", "-c", line]
      var argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) }
      argv.append(nil)
      defer { argv.forEach { free($0) } }
      var pid: pid_t = 0
      guard posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ) == 0 else { return "" }
      var status: Int32 = 0
      while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
      return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
    // a server of its own (-L), kept alive by the first screen's session until the end: killing
    // a server's last session and starting another at once races the server's exit
    defer { _ = try? tm(["kill-server"]) }
    let env = "TPTOP_RUNS=\(store.location.directory) LANG=C.UTF-8 TERM=xterm-256color"
    _ = try tm(["new-session", "-d", "-s", session, "-x", "120", "-y", "40", "env \(env) \(bin) compare cmp-a cmp-b; sleep 30"])
    XCTAssertTrue(eventually(20) { ((try? tm(["capture-pane", "-p", "-t", session])) ?? "").contains("tptop compare · loss vs step") })
    var screen = try tm(["capture-pane", "-p", "-t", session])
    XCTAssertTrue(screen.contains("cmp-a  last"), screen)
    XCTAssertTrue(screen.contains("cmp-b  last"), screen)
    XCTAssertTrue(screen.contains("0.001") && screen.contains("0.003"), screen)
    _ = try tm(["send-keys", "-t", session, "x"])
    XCTAssertTrue(eventually(10) { ((try? tm(["capture-pane", "-p", "-t", session])) ?? "").contains("loss vs tokens") })
    _ = try tm(["send-keys", "-t", session, "e", "l"])
    XCTAssertTrue(eventually(10) { ((try? tm(["capture-pane", "-p", "-t", session])) ?? "").contains("smoothing 0.6 · log y") })
    _ = try tm(["send-keys", "-t", session, "q"])
    // open: the dashboard on the stored run
    let opened = session + "-open"
    _ = try tm(["new-session", "-d", "-s", opened, "-x", "120", "-y", "40", "env \(env) \(bin) open cmp-a; sleep 30"])
    XCTAssertTrue(eventually(20) { ((try? tm(["capture-pane", "-p", "-t", opened])) ?? "").contains("cmp-a (stored)") })
    screen = try tm(["capture-pane", "-p", "-t", opened])
    XCTAssertTrue(screen.contains("150"), screen)
  }

  func alignedRows(_ rows: [[String]]) -> [String] {
    let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
    return rows.map { row in
      row.enumerated().map { c, v in
        c == 0 ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0) : String(repeating: " ", count: widths[c] - v.count) + v
      }.joined(separator: "  ")
    }
  }
}

/// Standard error read on another thread.
final class ErrText: @unchecked Sendable {
  private let done = DispatchSemaphore(value: 0)
  private var data = Data()
  func set(_ d: Data) { data = d; done.signal() }
  func wait() -> Data { done.wait(); return data }
}

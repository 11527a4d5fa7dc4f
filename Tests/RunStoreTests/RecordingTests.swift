import Foundation
import Glibc
import JobSchema
import TestSupport
import XCTest

@testable import RunStore
@testable import Telemetry

/// tptrain under mpirun records into a temporary store: every step of every rank, also when its
/// rings are far smaller than the run; a store that cannot be written is one warning and the
/// training still ends well; kill -9 of the recording rank at random points leaves a readable
/// store that lacks at most the last second.
final class RecordingTests: XCTestCase {
  var store: TempStore!

  override func setUp() { store = TempStore("rec") }
  override func tearDown() { store.remove() }

  struct Tools { let mpirun: String, tptrain: String }

  func tools() throws -> Tools {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    guard let mpirun = path.split(separator: ":").map({ "\($0)/mpirun" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
    else { throw MissingTool.error("mpirun (make test installs openmpi-bin)") }
    return Tools(mpirun: mpirun, tptrain: try BuildProducts.path("tptrain"))
  }

  /// `mpirun -np ranks tptrain --model tiny ...` with the store at `runs`.
  func process(_ job: String, steps: Int, ranks: Int = 2, runs: String? = nil, extra: [String] = [], output: Pipe? = nil,
               environment: [String: String] = [:]) throws -> Process {
    let t = try tools()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: t.mpirun)
    p.arguments = [
      "--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", t.tptrain, "--model", "tiny", "--tp", "\(ranks)",
      "--batch", "2", "--seq", "16", "--steps", "\(steps)", "--job", job, "--quiet", "--threads", "1",
      "--checkpoint-dir", store.location.directory + "-ck",
    ] + extra
    var env = ProcessInfo.processInfo.environment
    env["TPTOP_RUNS"] = runs ?? store.location.directory
    p.environment = env.merging(environment) { _, b in b }
    p.standardOutput = output ?? FileHandle.nullDevice
    p.standardError = output ?? FileHandle.nullDevice
    try p.run()
    return p
  }

  func run(_ job: String, steps: Int, ranks: Int = 2, runs: String? = nil, extra: [String] = [],
           environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let pipe = Pipe()
    let p = try process(job, steps: steps, ranks: ranks, runs: runs, extra: extra, output: pipe, environment: environment)
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    shm_unlink("/tptop." + job)
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
  }

  /// Stored run `job`: finished, nothing lost, one-step rows of every step 1...`steps` for each
  /// of `ranks` ranks and a job-level row of each step made from all of them. Returns the series.
  @discardableResult
  func assertEveryStep(_ job: String, steps: Int, ranks: Int, file: StaticString = #filePath, line: UInt = #line) throws -> [SeriesRow] {
    let run = try StoredRun(location: store.location, name: job)
    XCTAssertEqual(run.header.state, "finished", file: file, line: line)
    XCTAssertEqual(run.header.recordsLost, 0, file: file, line: line)
    XCTAssertEqual(try run.seriesSteps(), Array(1...steps), file: file, line: line)
    var perRank = [Int: [Int]]()
    try run.rankSteps { s, n, _ in XCTAssertEqual(n, 1, file: file, line: line); perRank[s.rank, default: []].append(s.step) }
    for rank in 0..<ranks { XCTAssertEqual(perRank[rank], Array(1...steps), "rank \(rank)", file: file, line: line) }
    var series: [SeriesRow] = []
    try run.series { series.append($0) }
    XCTAssertTrue(series.allSatisfy { $0.ranks == ranks }, "every step's row made from every rank's record", file: file, line: line)
    return series
  }

  func testARunWithTinyRingsStillHasEveryStepOfEveryRank() throws {
    let job = uniqueJob("tiny")
    let steps = 300
    // rings of 64 slots, a fifth of the run (a recorder starved behind smaller rings: below)
    defer { try? FileManager.default.removeItem(atPath: store.location.directory + "-ck") }
    let r = try run(job, steps: steps, extra: ["--ring-slots", "64", "--shard-stats-every", "50", "--batch", "8", "--seq", "64",
                                             "--checkpoint-every", "150"])
    XCTAssertEqual(r.status, 0, r.output)
    let series = try assertEveryStep(job, steps: steps, ranks: 2)
    let run = try StoredRun(location: store.location, name: job)
    XCTAssertTrue(series.allSatisfy { $0.values[0].isFinite && $0.values[0] > 0 })
    XCTAssertEqual(run.header.finalLoss.map(Double.init), series.last?.values[0])
    // where a stop's checkpoint goes, for a dashboard's stop prompt before the first save
    XCTAssertEqual(run.header.settings["checkpoint-dir"], store.location.directory + "-ck")
    var stats = 0
    try run.shardStats { _ in stats += 1 }
    XCTAssertGreaterThan(stats, 0)
  }

  /// A recorder that the host does not schedule for 300 ms at a time (fault injection:
  /// `TPTOP_RECORDER_TEST_STALL_MS`) behind 16-slot rings of ~1 ms steps: each ring laps many
  /// times between two of its polls, yet world rank 0's training thread rescues every record it
  /// has not read (`RingRescue`), so the store still has every step of every rank of both
  /// replicas, their shard statistics, and no record counted lost. (Without the rescue this run
  /// lost 850 of 800 + 50 records' worth: 14 series rows of 400.)
  func testAStarvedRecorderBehindTinyRingsStillGetsEveryRecord() throws {
    let job = uniqueJob("starved")
    let steps = 300
    let r = try run(job, steps: steps, ranks: 4, extra: ["--tp", "2", "--ring-slots", "16", "--shard-stats-every", "25"],
                    environment: ["TPTOP_RECORDER_TEST_STALL_MS": "300"])
    XCTAssertEqual(r.status, 0, r.output)
    XCTAssertFalse(r.output.contains("overwritten"), r.output)
    try assertEveryStep(job, steps: steps, ranks: 4)
    let run = try StoredRun(location: store.location, name: job)
    var statSteps = Set<Int>()
    try run.shardStats { statSteps.insert($0.step) }
    XCTAssertEqual(statSteps, Set([1] + Array(stride(from: 25, through: steps, by: 25))), "every published set of shard statistics")
  }

  /// A job on two (simulated) nodes is recorded once, on world rank 0's node, complete: the
  /// other node's ranks 2–3 reach rank 0's segment by forwarding, and the store has every step
  /// of all four ranks and their shard statistics (16-slot rings), and no second run.
  func testAJobOnTwoNodesIsRecordedOnceAndComplete() throws {
    let job = uniqueJob("nodes")
    let steps = 200
    defer { shm_unlink("/tptop@node1." + job) }
    let r = try run(job, steps: steps, ranks: 4,
                    extra: ["--tp", "2", "--simulate-nodes", "2", "--ring-slots", "16", "--shard-stats-every", "50"])
    XCTAssertEqual(r.status, 0, r.output)
    XCTAssertEqual(store.location.runNames(), [job], "one run, not one per node")
    try assertEveryStep(job, steps: steps, ranks: 4)
    let run = try StoredRun(location: store.location, name: job)
    XCTAssertEqual(run.header.world, 4)
    var statRanks = Set<Int>()
    try run.shardStats { statRanks.insert($0.rank) }
    XCTAssertEqual(statRanks, [0, 1, 2, 3], "the forwarded ranks' shard statistics too")
  }

  func testNoRecordWritesNothingAndAnUnwritableStoreIsOneWarning() throws {
    let job = uniqueJob("norec")
    var r = try run(job, steps: 5, extra: ["--no-record"])
    XCTAssertEqual(r.status, 0, r.output)
    XCTAssertFalse(FileManager.default.fileExists(atPath: store.location.directory))
    // the store's directory is a file: one warning line, training goes on and ends well
    _ = FileManager.default.createFile(atPath: store.location.directory, contents: Data("not a directory".utf8))
    r = try run(job, steps: 5)
    XCTAssertEqual(r.status, 0, r.output)
    let warnings = r.output.split(separator: "\n").filter { $0.contains("warning") }
    XCTAssertEqual(warnings.count, 1, r.output)
    XCTAssertTrue(warnings.first?.contains("is not a directory") == true, r.output)
    XCTAssertEqual(try String(contentsOfFile: store.location.directory, encoding: .utf8), "not a directory")
  }

  /// Runs `line` with /bin/sh, output discarded; its exit status.
  static func sh(_ line: String) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", line]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try? p.run()
    p.waitUntilExit()
    return p.terminationStatus
  }

  /// A store directory on a read-only file system (a read-only bind mount; root ignores file
  /// modes): one warning line, training ends as it would, nothing is written there.
  func testAReadOnlyStoreIsOneWarningAndTrainingGoesOn() throws {
    guard geteuid() == 0 else { throw XCTSkip("a read-only bind mount needs root") }
    let dir = store.location.directory
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    guard Self.sh("mount --bind '\(dir)' '\(dir)' && mount -o remount,ro,bind '\(dir)'") == 0 else {
      _ = Self.sh("umount '\(dir)'")
      throw XCTSkip("a read-only bind mount is not permitted here")
    }
    defer { _ = Self.sh("umount '\(dir)'") }
    let job = uniqueJob("ro")
    let r = try run(job, steps: 20)
    XCTAssertEqual(r.status, 0, r.output)
    let warnings = r.output.split(separator: "\n").filter { $0.contains("warning") }
    XCTAssertEqual(warnings.count, 1, r.output)
    XCTAssertTrue(warnings.first?.contains("is not writable (Read-only file system)") == true, r.output)
    XCTAssertTrue(warnings.first?.hasSuffix("training goes on") == true, r.output)
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
  }

  /// A store on a disk that fills up mid-run (its directory a 160 KiB tmpfs): training goes
  /// on to its last step and exits 0 as without a store, one warning line says recording
  /// stopped, and the store file stays consistent: `PRAGMA integrity_check` is ok and what was
  /// committed reads back as steps 1…k with no hole.
  func testAFullDiskStopsRecordingNotTraining() throws {
    guard geteuid() == 0 else { throw XCTSkip("mounting a small tmpfs needs root") }
    let mount = store.location.directory
    try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
    guard Self.sh("mount -t tmpfs -o size=160k tmpfs '\(mount)'") == 0 else { throw XCTSkip("mount -t tmpfs is not permitted here") }
    defer { _ = Self.sh("umount '\(mount)'") }
    let job = uniqueJob("full")
    let log = store.location.directory + "-steps.jsonl"
    defer { try? FileManager.default.removeItem(atPath: log) }
    let steps = 1500
    let r = try run(job, steps: steps, extra: ["--log", log])
    XCTAssertEqual(r.status, 0, r.output)
    let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
    XCTAssertEqual(lines.count, steps, "training reached its last step")
    XCTAssertTrue(lines.last?.contains("\"step\":\(steps),") == true, String(lines.last ?? ""))
    let warnings = r.output.split(separator: "\n").filter { $0.contains("warning") }
    XCTAssertEqual(warnings.count, 1, r.output)
    XCTAssertTrue(warnings.first.map { $0.contains("full") && $0.contains("recording of run '\(job)' stopped, training goes on") } == true,
                  r.output)
    let check = try python("""
      import sqlite3, sys
      db = sqlite3.connect(sys.argv[1])
      print(db.execute('PRAGMA integrity_check').fetchone()[0])
      steps = [r[0] for r in db.execute('SELECT step FROM series ORDER BY step')]
      print(len(steps), steps == list(range(1, len(steps) + 1)))
      """, [store.location.path(run: job)])
    XCTAssertEqual(check.status, 0, check.err)
    let out = check.out.split(separator: "\n")
    XCTAssertEqual(out.first, "ok", check.out)
    let committed = out.dropFirst().first.map { $0.split(separator: " ") } ?? []
    XCTAssertEqual(committed.last, "True", check.out)
    XCTAssertLessThan(Int(committed.first ?? "") ?? steps, steps, "the disk filled before the run ended: \(check.out)")
    XCTAssertNoThrow(try StoredRun(location: store.location, name: job))
  }

  /// kill -9 of the recording process (world rank 0) at random points, 20 times: the store opens,
  /// its series has no hole, and every step rank 0 published more than a second before the kill
  /// is in it.
  func testKillNineOfTheRecorderLosesAtMostTheLastSecond() throws {
    _ = try tools()
    var rng = SystemRandomNumberGenerator()
    var kills = 0
    for i in 0..<20 {
      let job = uniqueJob("kill\(i)")
      let p = try process(job, steps: 100_000, ranks: 1)
      defer { shm_unlink("/tptop." + job) }
      // wait for the first recorded commit, then a random while
      XCTAssertTrue(eventually(60) { store.location.exists(run: job) && ((try? StoredRun(location: store.location, name: job).header.lastStep) ?? 0) > 0 })
      usleep(UInt32.random(in: 0...1_500_000, using: &rng))
      guard let reader = try? JobReader(job: job, in: .default), reader.rankStatus(0).pidAlive else { XCTFail("job \(job) is gone"); continue }
      let pid = reader.rankStatus(0).pid
      kill(pid, SIGKILL)
      let killedAt = telemetryMonotonicNanos()
      p.waitUntilExit()
      kills += 1
      // what rank 0 published at least a second before the kill
      var published: [Int] = []
      reader.seekToStart()
      for rec in reader.poll()[0].steps where rec.timestampNs + 1_000_000_000 <= killedAt { published.append(rec.step) }
      let run = try StoredRun(location: store.location, name: job)
      let steps = try run.seriesSteps()
      XCTAssertEqual(steps, Array(1...(steps.last ?? 0)), "a hole in the series after kill \(i)")
      if let must = published.max() {
        XCTAssertGreaterThanOrEqual(steps.last ?? 0, must, "kill \(i): step \(must) was published over a second before the kill")
      }
      let check = try python("""
        import sqlite3, sys
        print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])
        """, [store.location.path(run: job)])
      XCTAssertEqual(check.out, "ok\n", check.err)
    }
    XCTAssertEqual(kills, 20)
  }
}

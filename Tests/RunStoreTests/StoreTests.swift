import Foundation
import GRDB
import JobSchema
import XCTest

@testable import RunStore
@testable import Telemetry

/// The store on disk: what is written reads back exactly, through this module and through
/// Python's own sqlite3 (an independent SQLite reader).
final class StoreTests: XCTestCase {
  func header(_ name: String, world: Int = 2, steps: Int = 100, bucket: Int = 1) -> RunHeader {
    var h = RunHeader(name: name, job: name, writer: "tptrain", state: "running", started: 1_700_000_000, world: world,
                      tp: world, dp: 1, totalSteps: steps, preset: "tiny", budgetBytes: 1 << 20)
    h.bucketSteps = bucket
    h.settings = ["lr": "0.001", "batch": "2"]
    h.model = ModelShape(layers: 2, heads: 2, channels: 32, vocab: 65, paddedVocab: 128, maxSeq: 64, batch: 2, seq: 16)
    return h
  }

  func testEveryStepOfEveryRankReadsBackExactlyFromDisk() throws {
    let store = TempStore("roundtrip")
    defer { store.remove() }
    let file = try RunFile(location: store.location, header: header("r1"), reopen: false)
    let acc = RunAccumulator(world: 2, dp: 1, bucketSteps: 1, wallOffset: 0)
    var written: [StepRecord] = []
    for step in 1...50 {
      for rank in 0..<2 {
        let r = stepRecord(step: step, rank: rank)
        written.append(r)
        acc.add(r, nowNs: 0)
      }
      if step % 7 == 0 {
        try file.write(acc.takeBatch(nowNs: 0), state: "running", lastStep: acc.lastStep, finalLoss: acc.finalLoss, bestLoss: acc.bestLoss)
      }
    }
    var e = EventRecord(kind: .checkpointSaved, step: 20, text: "ck/step_20 \"quoted\"")
    e.rank = 1
    acc.add(e)
    var t = TensorStatsRecord()
    t.rank = 0
    t.step = 10
    t.firstTensor = 0
    t.entries = [TensorNorms(weightNorm: 1.5, gradNorm: 0.25, updateRatio: 1e-3), TensorNorms(weightNorm: 2, gradNorm: 0.5, updateRatio: 2e-3)]
    acc.add(t)
    try file.write(acc.takeBatch(nowNs: 0, final: true), state: "finished", lastStep: acc.lastStep, finalLoss: acc.finalLoss,
                   bestLoss: acc.bestLoss, ended: 1_700_000_100)

    let run = try StoredRun(location: store.location, name: "r1")
    XCTAssertEqual(run.header.state, "finished")
    XCTAssertEqual(run.header.lastStep, 50)
    XCTAssertEqual(run.header.finalLoss, 5 - 50 * 0.01)
    XCTAssertEqual(run.header.bestLoss, 5 - 50 * 0.01)
    XCTAssertEqual(run.header.settings["lr"], "0.001")
    XCTAssertEqual(try run.seriesSteps(), Array(1...50))
    var read: [StepRecord] = []
    try run.rankSteps { s, n, _ in XCTAssertEqual(n, 1); read.append(s) }
    let expected = written.sorted { ($0.rank, $0.step) < ($1.rank, $1.step) }
    XCTAssertEqual(read.count, expected.count)
    for (a, b) in zip(read, expected) {
      XCTAssertEqual(a.metrics, b.metrics)
      XCTAssertEqual(a.rank, b.rank)
      XCTAssertEqual(a.timestampNs, b.timestampNs)
      XCTAssertEqual(a.index, b.index)
    }
    var events: [EventRecord] = []
    try run.events { events.append($0) }
    XCTAssertEqual(events.map(\.text), ["ck/step_20 \"quoted\""])
    XCTAssertEqual(events.first?.rank, 1)
    var stats: [TensorStatsRecord] = []
    try run.shardStats { stats.append($0) }
    XCTAssertEqual(stats.count, 1)
    XCTAssertEqual(stats.first?.entries, t.entries)

    // an independent SQLite reader sees a WAL database with the same rows
    let check = try python("""
      import sqlite3, sys
      db = sqlite3.connect(sys.argv[1])
      print(db.execute('PRAGMA journal_mode').fetchone()[0])
      print(db.execute('PRAGMA integrity_check').fetchone()[0])
      print(db.execute('SELECT COUNT(*), MIN(step), MAX(step) FROM series').fetchone())
      print(db.execute('SELECT COUNT(*) FROM rank_steps').fetchone()[0])
      print(db.execute('SELECT step_ns FROM rank_steps WHERE rank = 1 AND step = 3').fetchone()[0])
      """, [store.location.path(run: "r1")])
    XCTAssertEqual(check.status, 0, check.err)
    XCTAssertEqual(check.out.split(separator: "\n").map(String.init),
                   ["wal", "ok", "(50, 1, 50)", "100", "\(10_000_000 + 3000 + 100)"])
  }

  func testDecimatedBucketsKeepMinMeanAndMaxSoASpikeSurvives() throws {
    let store = TempStore("decimate")
    defer { store.remove() }
    let file = try RunFile(location: store.location, header: header("r2", world: 1, bucket: 8), reopen: false)
    let acc = RunAccumulator(world: 1, dp: 1, bucketSteps: 8, wallOffset: 0)
    var records: [StepRecord] = []
    for step in 1...20 {
      var r = stepRecord(step: step, rank: 0)
      if step == 13 { r.stepNs = 900_000_000 }
      records.append(r)
      acc.add(r, nowNs: 0)
      if step == 10 { try file.write(acc.takeBatch(nowNs: 0), state: "running", lastStep: acc.lastStep, finalLoss: nil, bestLoss: nil) }
    }
    try file.write(acc.takeBatch(nowNs: 0, final: true), state: "finished", lastStep: acc.lastStep, finalLoss: nil, bestLoss: nil)
    // every step of the job-level series, at full resolution
    let run = try StoredRun(location: store.location, name: "r2")
    XCTAssertEqual(try run.seriesSteps(), Array(1...20))
    let db = try DatabaseQueue(path: store.location.path(run: "r2"))
    let rows = try db.read { try Row.fetchAll($0, sql: "SELECT step, last_step, steps, step_ns, step_ns_min, step_ns_max FROM rank_steps ORDER BY step") }
    XCTAssertEqual(rows.map { $0["step"] as Int }, [1, 9, 17])
    XCTAssertEqual(rows.map { $0["steps"] as Int }, [8, 8, 4])
    for (row, range) in zip(rows, [0..<8, 8..<16, 16..<20]) {
      let values = records[range].map { Double($0.stepNs) }
      XCTAssertEqual(row["step_ns_min"] as Double, values.min()!)
      XCTAssertEqual(row["step_ns_max"] as Double, values.max()!)
      XCTAssertEqual(row["step_ns"] as Double, values.reduce(0, +) / Double(values.count), accuracy: 1e-6)
    }
    XCTAssertEqual(rows[1]["step_ns_max"] as Double, 900_000_000)
  }

  func testBucketSizeKeepsTheBudget() {
    XCTAssertEqual(RunAccumulator.bucketSteps(steps: 1000, world: 2, budgetBytes: 256 << 20), 1)
    // 100 000 steps × 8 ranks × 320 B = 256 MB: over 90 % of 256 MiB less the series; bucket
    // rows (~700 B, min and max included) of 2 steps save nothing, of 4 steps fit
    XCTAssertEqual(RunAccumulator.bucketSteps(steps: 100_000, world: 8, budgetBytes: 256 << 20), 4)
    let k = RunAccumulator.bucketSteps(steps: 100_000, world: 8, budgetBytes: 64 << 20)
    XCTAssertEqual(k, 16)
    XCTAssertLessThanOrEqual(100_000.0 * 8 * 700 / Double(k) + 100_000 * 120, 0.9 * Double(64 << 20))
    XCTAssertGreaterThan(100_000.0 * 8 * 700 / Double(k / 2) + 100_000 * 120, 0.9 * Double(64 << 20))
  }

  func testRestartIsTheSameRunAndAnotherJobGetsASuffix() throws {
    let store = TempStore("names")
    defer { store.remove() }
    XCTAssertTrue(store.location.runName(forJob: "a", restart: false) == ("a", nil))
    _ = try RunFile(location: store.location, header: header("a"), reopen: false)
    let other = store.location.runName(forJob: "a", restart: false)
    XCTAssertEqual(other.name, "a-2")
    XCTAssertEqual(other.note, "a stored run named 'a' exists; this job is recorded as 'a-2'")
    XCTAssertTrue(store.location.runName(forJob: "a.r1", restart: false) == ("a", nil))
    // an incarnation the supervisor had to rename (its usual name was taken) is the same run
    XCTAssertTrue(store.location.runName(forJob: "a.r1.5e3edf13", restart: false) == ("a", nil))
    XCTAssertTrue(store.location.runName(forJob: "a", restart: true) == ("a", nil))
    var h = header("a")
    h.job = "a.r1"
    let again = try RunFile(location: store.location, header: h, reopen: true)
    XCTAssertEqual(again.header.incarnations, 2)
    XCTAssertEqual(try StoredRun(location: store.location, name: "a").header.job, "a.r1")
  }

  /// A file written before the store kept the clock offset and the shard layout (schema 1)
  /// reads without them, and a restart of its job brings it to this schema.
  func testASchemaOneFileReadsAndARestartMigratesIt() throws {
    let store = TempStore("v1")
    defer { store.remove() }
    var h = header("old")
    h.wallMinusBootNs = 42
    _ = try RunFile(location: store.location, header: h, reopen: false)
    let down = try python("""
      import sqlite3, sys
      db = sqlite3.connect(sys.argv[1])
      db.execute('ALTER TABLE run DROP COLUMN wall_minus_boot_ns')
      db.execute('DROP TABLE tensors')
      db.execute('PRAGMA user_version = 1')
      db.commit()
      """, [store.location.path(run: "old")])
    XCTAssertEqual(down.status, 0, down.err)
    let v1 = try StoredRun(location: store.location, name: "old").header
    XCTAssertNil(v1.wallMinusBootNs)
    XCTAssertEqual(v1.tensors, [])
    h.wallMinusBootNs = 7
    h.tensors = [ShardedTensor(name: "wte", shape: [64, 8], split: .vocab, splitDim: 0, ranks: [[0..<32], [32..<64]],
                               rankDescriptions: ["rows 0–31", "rows 32–63"])]
    _ = try RunFile(location: store.location, header: h, reopen: true)
    let v2 = try StoredRun(location: store.location, name: "old").header
    XCTAssertEqual(v2.wallMinusBootNs, 7)
    XCTAssertEqual(v2.tensors, h.tensors)
    XCTAssertEqual(v2.incarnations, 2)
  }

  /// A new run's file appears whole: a reader polling the store while runs are created never
  /// opens one without its schema or its run row (what a kill -9 during creation used to leave
  /// behind, listed as unreadable), and a leftover of such a creation is never listed.
  func testANewRunAppearsWhole() throws {
    let store = TempStore("whole")
    defer { store.remove() }
    try store.location.prepare()
    _ = FileManager.default.createFile(atPath: store.location.path(run: "r0") + ".creating-1", contents: Data("half".utf8))
    XCTAssertEqual(store.location.runNames(), [])
    final class Seen: @unchecked Sendable { var problems: [String] = []; var opened = 0; var done = false; let lock = NSLock() }
    let seen = Seen()
    let location = store.location
    let reader = Thread {
      while !seen.lock.withLock({ seen.done }) {
        for name in location.runNames() {
          do {
            _ = try StoredRun(location: location, name: name)
            seen.lock.withLock { seen.opened += 1 }
          } catch {
            seen.lock.withLock { seen.problems.append("\(error)") }
          }
        }
      }
    }
    reader.start()
    for i in 0..<60 { _ = try RunFile(location: store.location, header: header("r\(i)"), reopen: false) }
    seen.lock.withLock { seen.done = true }
    while reader.isExecuting { usleep(1000) }
    XCTAssertEqual(seen.problems, [])
    XCTAssertGreaterThan(seen.opened, 60)
    XCTAssertEqual(store.location.runNames(), (0..<60).map { "r\($0)" }.sorted())
    let files = try FileManager.default.contentsOfDirectory(atPath: store.location.directory)
    XCTAssertEqual(files.filter { $0.contains(".creating-") }, ["r0.sqlite.creating-1"], "only the other process's leftover")
  }

  /// A recorder killed while it created its run leaves `<run>.sqlite.creating-<pid>` and its
  /// WAL files; the next recorder to open the store removes them once their process is gone
  /// and they are a minute old — never a live process's, a fresh one, or a run.
  func testAnAbandonedCreationIsRemovedByTheNextRecorder() throws {
    let store = TempStore("abandoned")
    defer { store.remove() }
    try store.location.prepare()
    let finished = Process()
    finished.executableURL = URL(fileURLWithPath: "/bin/true")
    try finished.run()
    finished.waitUntilExit()
    let dead = finished.processIdentifier
    let dir = store.location.directory
    let old = ["a.sqlite.creating-\(dead)", "a.sqlite.creating-\(dead)-wal", "a.sqlite.creating-\(dead)-shm"]
    let kept = ["b.sqlite.creating-\(getpid())", "c.sqlite.creating-\(dead)x"]
    for name in old + kept + ["fresh.sqlite.creating-\(dead)"] {
      XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/" + name, contents: Data("half".utf8)))
    }
    let hourAgo = Date(timeIntervalSinceNow: -3600)
    for name in old + kept {
      try FileManager.default.setAttributes([.modificationDate: hourAgo], ofItemAtPath: dir + "/" + name)
    }
    _ = try RunFile(location: store.location, header: header("r"), reopen: false)
    let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
    for name in old { XCTAssertFalse(left.contains(name), "\(name) of a process that is gone") }
    XCTAssertTrue(left.contains("b.sqlite.creating-\(getpid())"), "a live recorder's")
    XCTAssertTrue(left.contains("fresh.sqlite.creating-\(dead)"), "under a minute old")
    XCTAssertEqual(store.location.runNames(), ["r"])
  }

  func testAStoreThatIsAFileOrCorruptIsOneLine() throws {
    let store = TempStore("bad")
    defer { store.remove() }
    _ = FileManager.default.createFile(atPath: store.location.directory, contents: Data("x".utf8))
    XCTAssertThrowsError(try RunFile(location: store.location, header: header("x"), reopen: false)) { e in
      XCTAssertEqual("\(e)", "run store \(store.location.directory) is not a directory")
    }
    try FileManager.default.removeItem(atPath: store.location.directory)
    try store.location.prepare()
    _ = FileManager.default.createFile(atPath: store.location.path(run: "junk"), contents: Data(repeating: 0x5a, count: 8192))
    XCTAssertThrowsError(try StoredRun(location: store.location, name: "junk")) { e in
      XCTAssertTrue("\(e)".contains("junk.sqlite"), "\(e)")
      XCTAssertFalse("\(e)".contains("\n"))
    }
    XCTAssertThrowsError(try RunFile(location: store.location, header: header("junk"), reopen: true))
    XCTAssertThrowsError(try StoredRun(location: store.location, name: "../etc/passwd"))
  }

  /// The Python writer's schema (python/tptop_telemetry/store.py) is this one: every table with
  /// the same columns, types and keys, and the same bucket rule.
  func testThePythonWriterCreatesTheSameSchema() throws {
    let store = TempStore("schema")
    defer { store.remove() }
    _ = try RunFile(location: store.location, header: header("swift"), reopen: false)
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    let r = try python("""
      import sqlite3, sys
      sys.path.insert(0, sys.argv[1] + '/python')
      from tptop_telemetry import store
      py = sqlite3.connect(sys.argv[2] + '/python.sqlite')
      for sql in store.CREATION:
          py.execute(sql)
      sw = sqlite3.connect(sys.argv[2] + '/swift.sqlite')
      for t in ('run', 'settings', 'series', 'rank_steps', 'events', 'shard_stats', 'tensors'):
          a = sw.execute(f'PRAGMA table_info({t})').fetchall()
          b = py.execute(f'PRAGMA table_info({t})').fetchall()
          print(t, len(a), a == b)
      print(store.bucket_steps(100000, 8, 256 << 20), store.bucket_steps(100000, 8, 64 << 20), store.bucket_steps(1000, 2, 256 << 20))
      """, [repo, store.location.directory])
    XCTAssertEqual(r.status, 0, r.err)
    let lines = r.out.split(separator: "\n").map(String.init)
    XCTAssertEqual(lines.count, 8, r.out)
    for line in lines.prefix(7) { XCTAssertTrue(line.hasSuffix(" True"), line) }
    XCTAssertEqual(lines.last, [(100_000, 8, 256), (100_000, 8, 64), (1000, 2, 256)].map { s, w, m in
      "\(RunAccumulator.bucketSteps(steps: s, world: w, budgetBytes: m << 20))"
    }.joined(separator: " "))
  }
}

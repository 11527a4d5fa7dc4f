// Reading a stored run: its header, its job-level series, and every record it holds as the
// ring records they came from (for `tptop export` and the dashboard). Reads stream through
// cursors, so a run of any length is read in bounded memory. A live run is read while its
// recorder writes (WAL: readers never block the writer).

import Foundation
import GRDB
import JobSchema
import Telemetry

/// A stored run opened for reading.
public final class StoredRun {
  public let name: String
  public let path: String
  public let header: RunHeader
  let db: DatabaseQueue

  /// Opens run `name` of `location`.
  /// - Throws: `StoreError` with one line (no such run, not a run store file, damaged).
  public convenience init(location: StoreLocation, name: String) throws {
    guard StoreLocation.isValidRunName(name), location.exists(run: name) else {
      throw StoreError("no stored run named '\(name)' in \(location.directory) (tptop runs lists them)")
    }
    try self.init(path: location.path(run: name), name: name)
  }

  /// Opens the run a job or incarnation name records into: run `name`, or, for a supervisor's
  /// incarnation (`<job>.r<k>`, as `tptop ls` and the supervisor name it) whose own name no
  /// run has, the run of its job `<job>` (where every incarnation records).
  public static func recording(_ name: String, location: StoreLocation) throws -> StoredRun {
    let base = IncarnationName.parse(name).base
    if base != name, !location.exists(run: name), location.exists(run: base) {
      return try StoredRun(location: location, name: base)
    }
    return try StoredRun(location: location, name: name)
  }

  /// Opens the run database at `path`.
  public init(path: String, name: String) throws {
    self.name = name
    self.path = path
    do {
      var config = Configuration()
      config.readonly = !FileManager.default.isWritableFile(atPath: path)
      config.busyMode = .timeout(5)
      db = try DatabaseQueue(path: path, configuration: config)
      header = try db.read { d in
        let version = try Int.fetchOne(d, sql: "PRAGMA user_version") ?? 0
        guard version >= 1 && version <= StoreSchema.version else {
          throw StoreError("\(path) is not a tptop run store (schema \(version))")
        }
        guard let row = try Row.fetchOne(d, sql: "SELECT * FROM run WHERE id = 1") else {
          throw StoreError("\(path) holds no run description")
        }
        var h = Self.header(row)
        for s in try Row.fetchAll(d, sql: "SELECT key, value FROM settings") { h.settings[s["key"]] = s["value"] }
        h.tensors = try StoredLayout.read(d)
        return h
      }
    } catch let e as StoreError {
      throw e
    } catch let e as DatabaseError {
      throw StoreError("\(path): \(e.message ?? "\(e.resultCode)")")
    } catch {
      throw StoreError("\(path): \(error)")
    }
  }

  static func header(_ r: Row) -> RunHeader {
    var h = RunHeader(name: r["name"], job: r["job"], writer: r["writer"], state: r["state"], started: r["started"],
                      world: r["world"], tp: r["tp"], dp: r["dp"], totalSteps: r["total_steps"], preset: r["preset"],
                      budgetBytes: r["budget_bytes"])
    h.ended = r["ended"]
    h.updated = r["updated"]
    h.incarnations = r["incarnations"]
    if let layers: Int = r["layers"] {
      h.model = ModelShape(layers: layers, heads: r["heads"] ?? 0, channels: r["channels"] ?? 0, vocab: r["vocab"] ?? 0,
                           paddedVocab: r["padded_vocab"] ?? 0, maxSeq: r["max_seq"] ?? 0, batch: r["batch"] ?? 0,
                           seq: r["seq"] ?? 0)
    }
    h.features = RunFeatures(rawValue: UInt64(bitPattern: r["features"] ?? 0))
    h.commandLine = r["command_line"] ?? ""
    h.hosts = r["hosts"] ?? ""
    h.recorderPid = Int32(truncatingIfNeeded: (r["recorder_pid"] as Int?) ?? 0)
    h.bucketSteps = r["bucket_steps"] ?? 1
    h.lastStep = r["last_step"] ?? 0
    h.finalLoss = (r["final_loss"] as Double?).map(Float.init)
    h.bestLoss = (r["best_loss"] as Double?).map(Float.init)
    h.recordsLost = r["records_lost"] ?? 0
    h.wallMinusBootNs = r["wall_minus_boot_ns"]
    return h
  }

  func reading<T>(_ body: (Database) throws -> T) throws -> T {
    do { return try db.read(body) } catch let e as DatabaseError {
      throw StoreError("\(path): \(e.message ?? "\(e.resultCode)")")
    }
  }

  /// The job-level series, in step order, from `fromStep`; `body` gets each row. Columns are
  /// read by position (a lookup by name per value costs more than the rest of the read).
  public func series(fromStep: Int = 0, _ body: (SeriesRow) throws -> Void) throws {
    try reading { d in
      let sql = "SELECT step, timestamp_ns, wall_time, ranks, " + StoreSchema.seriesColumns.joined(separator: ", ")
        + " FROM series WHERE step >= ? ORDER BY step"
      let rows = try Row.fetchCursor(d, sql: sql, arguments: [fromStep])
      let n = StoreSchema.seriesColumns.count
      while let r = try rows.next() {
        var values = [Double](repeating: .nan, count: n)
        for k in 0..<n { values[k] = (r[4 + k] as Double?) ?? .nan }
        try body(SeriesRow(step: r[0], timestampNs: UInt64(bitPattern: r[1] ?? 0), wallTime: r[2] ?? 0, ranks: r[3] ?? 0,
                           values: values))
      }
    }
  }

  /// The job-level series in windows of `window` steps (steps 1…window, window+1…), aggregated
  /// by SQLite in one pass: per window its last step and wall time, the sum of `tokens`, and
  /// the mean of each of `columns` (`StoreSchema.seriesColumns` names) over the steps where it
  /// is set, NaN where none is. What `tptop compare` draws of a long run without decoding every
  /// row here.
  public func seriesWindows(window: Int, columns: [String],
                            _ body: (_ lastStep: Int, _ wallTime: Double, _ tokens: Double, _ means: [Double]) throws -> Void) throws {
    precondition(columns.allSatisfy(StoreSchema.seriesColumns.contains), "not a series column")
    try reading { d in
      let means = columns.map { "AVG(\($0))" }.joined(separator: ", ")
      let sql = "SELECT MAX(step) AS last, MAX(wall_time), TOTAL(tokens)\(columns.isEmpty ? "" : ", " + means) FROM series "
        + "GROUP BY (step - 1) / ? ORDER BY last"
      let rows = try Row.fetchCursor(d, sql: sql, arguments: [Swift.max(window, 1)])
      while let r = try rows.next() {
        try body(r[0], r[1] ?? 0, r[2] ?? 0, columns.indices.map { (r[3 + $0] as Double?) ?? .nan })
      }
    }
  }

  /// The loss series summed up: the last value, the lowest, how many steps have one, and the
  /// mean of the last `recent` of them (nil where there is none).
  public func lossSummary(recent: Int = 100) throws -> (final: Double?, best: Double?, count: Int, recentMean: Double?) {
    try reading { d in
      let final = try Double.fetchOne(d, sql: "SELECT loss FROM series WHERE loss IS NOT NULL ORDER BY step DESC LIMIT 1")
      let row = try Row.fetchOne(d, sql: "SELECT MIN(loss), COUNT(loss) FROM series")
      let mean = try Double.fetchOne(
        d, sql: "SELECT AVG(loss) FROM (SELECT loss FROM series WHERE loss IS NOT NULL ORDER BY step DESC LIMIT ?)", arguments: [recent])
      return (final, row?[0], row?[1] ?? 0, mean)
    }
  }

  /// Steps the series spans, first to last (two lookups in the primary key; nil when empty).
  public func seriesSpan() throws -> ClosedRange<Int>? {
    try reading { d in
      guard let r = try Row.fetchOne(d, sql: "SELECT MIN(step), MAX(step) FROM series"), let a: Int = r[0], let b: Int = r[1] else {
        return nil
      }
      return a...b
    }
  }

  /// Number of job-level series rows.
  public func seriesCount() throws -> Int { try reading { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM series") ?? 0 } }

  /// Steps of the series (ascending).
  public func seriesSteps() throws -> [Int] { try reading { try Int.fetchAll($0, sql: "SELECT step FROM series ORDER BY step") } }

  /// Per-rank step rows per rank, from each rank's first and last step (two lookups in the
  /// primary key per rank: counting the rows would read the whole table) and the bucket size.
  public func rankStepCounts() throws -> [Int: Int] {
    try reading { d in
      var out: [Int: Int] = [:]
      let st = try d.cachedStatement(sql: "SELECT MIN(step), MAX(step) FROM rank_steps WHERE rank = ?")
      for rank in 0..<header.world {
        guard let r = try Row.fetchOne(st, arguments: [rank]), let first: Int = r[0], let last: Int = r[1] else { continue }
        out[rank] = (last - first) / Swift.max(1, header.bucketSteps) + 1
      }
      return out
    }
  }

  /// Every per-rank step row as a step record (the bucket's means for a decimated bucket,
  /// its first step as the step), with the steps it holds and its wall time, in (rank, step) order.
  public func rankSteps(afterStep: Int = Int.min, _ body: (StepRecord, _ steps: Int, _ wallTime: Double) throws -> Void) throws {
    try reading { d in
      let sql = "SELECT rank, step, steps, ring_index, timestamp_ns, wall_time, allreduce_hist, "
        + StepColumns.all.map(\.column).joined(separator: ", ") + " FROM rank_steps WHERE step > ? ORDER BY rank, step"
      let rows = try Row.fetchCursor(d, sql: sql, arguments: [afterStep])
      let columns = StepColumns.all
      while let r = try rows.next() {
        var s = StepRecord()
        s.rank = r[0]
        s.step = r[1]
        s.index = UInt64(bitPattern: r[3] ?? 0)
        s.timestampNs = UInt64(bitPattern: r[4] ?? 0)
        for k in columns.indices { columns[k].assign((r[7 + k] as Double?) ?? .nan, to: &s.metrics) }
        if let blob: Data = r[6], blob.count == 4 * LatencyHistogram.bucketCount {
          blob.withUnsafeBytes { b in
            for i in 0..<LatencyHistogram.bucketCount { s.metrics.allReduceHistogram[i] = b.load(fromByteOffset: 4 * i, as: UInt32.self) }
          }
        }
        try body(s, r[2] ?? 1, r[5] ?? 0)
      }
    }
  }

  /// Per rank, the means of every field over windows of `window` steps, computed by SQLite
  /// (what `tptop open` shows of a long run: a few hundred points per rank, read without
  /// decoding every row here). The record's step is the window's last; `body` also gets the
  /// window's last wall time. The all-reduce histogram is left empty.
  public func rankStepMeans(window: Int, _ body: (StepRecord, _ wallTime: Double) throws -> Void) throws {
    try reading { d in
      let means = StepColumns.all.map { "AVG(\($0.column))" }.joined(separator: ", ")
      let sql = "SELECT rank, MAX(step) AS last, MAX(timestamp_ns), MAX(wall_time), \(means) FROM rank_steps "
        + "GROUP BY rank, (step - 1) / ? ORDER BY rank, last"
      let rows = try Row.fetchCursor(d, sql: sql, arguments: [Swift.max(window, 1)])
      let columns = StepColumns.all
      while let r = try rows.next() {
        var s = StepRecord()
        s.rank = r[0]
        s.step = r[1]
        s.timestampNs = UInt64(bitPattern: r[2] ?? 0)
        for k in columns.indices { columns[k].assign((r[4 + k] as Double?) ?? .nan, to: &s.metrics) }
        try body(s, r[3] ?? 0)
      }
    }
  }

  /// Every event, rank by rank in the order recorded (each incarnation's ring indices start
  /// again from 0, so by index a restarted run's events would interleave).
  public func events(_ body: (EventRecord) throws -> Void) throws {
    try reading { d in
      let rows = try Row.fetchCursor(d, sql: "SELECT * FROM events ORDER BY rank, rowid")
      while let r = try rows.next() {
        let kind = EventKind.allCases.first { $0.name == (r["kind"] as String? ?? "") } ?? .error
        var e = EventRecord(kind: kind, step: r["step"], text: r["text"] ?? "")
        e.rank = r["rank"]
        e.index = UInt64(bitPattern: r["ring_index"] ?? 0)
        e.timestampNs = UInt64(bitPattern: r["timestamp_ns"] ?? 0)
        try body(e)
      }
    }
  }

  /// Every shard-statistics record (entries of one rank and step together), in (rank, step) order.
  public func shardStats(_ body: (TensorStatsRecord) throws -> Void) throws {
    try reading { d in
      let rows = try Row.fetchCursor(d, sql: "SELECT * FROM shard_stats ORDER BY rank, step, tensor")
      var current: TensorStatsRecord?
      while let r = try rows.next() {
        let rank: Int = r["rank"], step: Int = r["step"], tensor: Int = r["tensor"]
        if let c = current, c.rank != rank || c.step != step || c.firstTensor + c.entries.count != tensor {
          try body(c)
          current = nil
        }
        if current == nil {
          var t = TensorStatsRecord()
          t.rank = rank
          t.step = step
          t.firstTensor = tensor
          t.index = UInt64(bitPattern: r["ring_index"] ?? 0)
          t.timestampNs = UInt64(bitPattern: r["timestamp_ns"] ?? 0)
          current = t
        }
        current?.entries.append(TensorNorms(weightNorm: Float((r["weight_norm"] as Double?) ?? .nan),
                                            gradNorm: Float((r["grad_norm"] as Double?) ?? .nan),
                                            updateRatio: Float((r["update_ratio"] as Double?) ?? .nan)))
      }
      if let c = current { try body(c) }
    }
  }

  /// Every record the run holds, as `tptop export` of a live job writes them: per rank, step
  /// records, events and shard statistics. Streams; returns the count.
  @discardableResult
  public func records(_ body: (TelemetryRecord) throws -> Void) throws -> Int {
    var n = 0
    try rankSteps { s, _, _ in n += 1; try body(.step(s)) }
    try events { e in n += 1; try body(.event(e)) }
    try shardStats { t in n += 1; try body(.tensorStats(t)) }
    return n
  }
}

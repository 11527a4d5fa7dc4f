// One run's database: created (or reopened for a restart of the same job) by its recorder,
// written in batched transactions, WAL mode so readers never block it.

import Foundation
import GRDB
import GRDBSQLite
import JobSchema
import Telemetry

/// A run's database opened for writing.
public final class RunFile {
  public let path: String
  public private(set) var header: RunHeader
  /// When reopened for a restart: how the incarnation before ended, as the run recorded it
  /// (its state, last step and last update, seconds since 1970).
  public private(set) var previousIncarnation: (state: String, lastStep: Int, updated: Double)?
  let db: DatabasePool

  /// Creates run `header.name` in `location`, or reopens it when `reopen` (a restart of the same
  /// job: one more incarnation, state running again).
  /// - Throws: `StoreError` with one line (unwritable directory, a corrupt file, a newer schema).
  public init(location: StoreLocation, header: RunHeader, reopen: Bool) throws {
    try location.prepare()
    let path = location.path(run: header.name)
    self.path = path
    self.header = header
    do {
      var config = Configuration()
      config.busyMode = .timeout(5)
      config.prepareDatabase { db in
        try db.execute(sql: "PRAGMA synchronous = NORMAL")
      }
      // a new run's file appears complete: its first transaction is written under a temporary
      // name (never listed: not a run name) and renamed into place, so no reader opens a
      // half-created file or holds it while that transaction wants it, and a kill -9 meanwhile
      // leaves no run that reads as unreadable
      let fresh = !FileManager.default.fileExists(atPath: path)
      let target = fresh ? path + ".creating-\(getpid())" : path
      if fresh { Self.removeDatabaseFiles(target) }
      var pool = try DatabasePool(path: target, configuration: config)
      var incarnations = header.incarnations
      var previous: (state: String, lastStep: Int, updated: Double)?
      try pool.write { d in
        let version = try Int.fetchOne(d, sql: "PRAGMA user_version") ?? 0
        if version > StoreSchema.version {
          throw StoreError("\(path) has store schema \(version); this tptop reads up to \(StoreSchema.version)")
        }
        for sql in StoreSchema.creation { try d.execute(sql: sql) }
        if version >= 1 {
          for v in version..<StoreSchema.version { for sql in StoreSchema.migration[v] ?? [] { try d.execute(sql: sql) } }
        }
        try d.execute(sql: "PRAGMA user_version = \(StoreSchema.version)")
        let existing = try Int.fetchOne(d, sql: "SELECT incarnations FROM run WHERE id = 1")
        if let n = existing, reopen {
          incarnations = n + 1
          if let r = try Row.fetchOne(d, sql: "SELECT state, last_step, updated FROM run WHERE id = 1") {
            previous = (r["state"] ?? "", r["last_step"] ?? 0, r["updated"] ?? 0)
          }
          // the first incarnation's clock offset stays (a file from before schema 2 takes this one's)
          try d.execute(
            sql: """
              UPDATE run SET job = ?, state = ?, ended = NULL, updated = ?, incarnations = ?, recorder_pid = ?, command_line = ?,
                wall_minus_boot_ns = COALESCE(wall_minus_boot_ns, ?) WHERE id = 1
              """,
            arguments: [header.job, header.state, header.updated, n + 1, Int(header.recorderPid), header.commandLine,
                        header.wallMinusBootNs])
        } else {
          try Self.insert(header, d)
        }
        try StoredLayout.write(header.tensors, d)
        for (k, v) in header.settings {
          try d.execute(sql: "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", arguments: [k, v])
        }
      }
      if fresh {
        try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try pool.close()
        guard rename(target, path) == 0 else {
          let reason = String(cString: strerror(errno))
          Self.removeDatabaseFiles(target)
          throw StoreError("run store \(path): cannot move the new run into place: \(reason)")
        }
        Self.removeDatabaseFiles(target)
        pool = try DatabasePool(path: path, configuration: config)
      }
      db = pool
      self.header.incarnations = incarnations
      previousIncarnation = previous
    } catch let e as StoreError {
      throw e
    } catch let e as DatabaseError {
      throw StoreError("run store \(path): \(e.message ?? "\(e.resultCode)")")
    } catch {
      throw StoreError("run store \(path): \(error)")
    }
  }

  /// Removes a database file and its WAL and shared-memory files, where they exist.
  static func removeDatabaseFiles(_ path: String) {
    for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
  }

  static func insert(_ h: RunHeader, _ d: Database) throws {
    let m = h.model
    try d.execute(
      sql: """
        INSERT INTO run (id, name, job, writer, state, started, updated, incarnations, world, tp, dp, total_steps, preset,
          layers, heads, channels, vocab, padded_vocab, max_seq, batch, seq, features, command_line, hosts, recorder_pid,
          budget_bytes, bucket_steps, wall_minus_boot_ns)
          VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
      arguments: StatementArguments([
        h.name, h.job, h.writer, h.state, h.started, h.updated, h.incarnations, h.world, h.tp, h.dp, h.totalSteps,
        h.preset, m?.layers, m?.heads, m?.channels, m?.vocab, m?.paddedVocab, m?.maxSeq, m?.batch, m?.seq,
        Int64(bitPattern: h.features.rawValue), h.commandLine, h.hosts, Int(h.recorderPid), h.budgetBytes, h.bucketSteps,
        h.wallMinusBootNs,
      ] as [(any DatabaseValueConvertible)?]))
  }

  static let rankStepSQL: String = {
    let cols = ["rank", "step", "last_step", "steps", "ring_index", "timestamp_ns", "wall_time", "allreduce_hist"]
      + StoreSchema.rankStepColumns
    return "INSERT OR REPLACE INTO rank_steps (\(cols.joined(separator: ", "))) VALUES ("
      + Array(repeating: "?", count: cols.count).joined(separator: ", ") + ")"
  }()

  static let seriesSQL: String = {
    let cols = ["step", "timestamp_ns", "wall_time", "ranks"] + StoreSchema.seriesColumns
    return "INSERT OR REPLACE INTO series (\(cols.joined(separator: ", "))) VALUES ("
      + Array(repeating: "?", count: cols.count).joined(separator: ", ") + ")"
  }()

  /// Whether each of `StoreSchema.seriesColumns` holds integers.
  static let seriesIntegral: [Bool] = StoreSchema.seriesColumns.map {
    ["tokens", "step_ns", "rss_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes"].contains($0)
  }

  /// Writes `batch` and the run's progress in one transaction.
  /// - Throws: `StoreError` (disk full, read-only, damaged file).
  public func write(_ batch: StoreBatch, state: String, lastStep: Int, finalLoss: Float?, bestLoss: Float?,
                    hosts: String? = nil, ended: Double? = nil) throws {
    let now = Date().timeIntervalSince1970
    do {
      try db.write { d in
        // the two tables written every step bind their values straight into SQLite's
        // statement: GRDB's argument arrays boxed ~80 values a row (most of the recorder's time)
        if !batch.series.isEmpty {
          let st = try d.cachedStatement(sql: Self.seriesSQL)
          for r in batch.series {
            try RowBinder.insert(st, d) { b in
              b.bind(Int64(r.step)); b.bind(Int64(bitPattern: r.timestampNs)); b.bind(r.wallTime); b.bind(Int64(r.ranks))
              for (i, v) in r.values.enumerated() { b.bind(v, integral: Self.seriesIntegral[i]) }
            }
          }
        }
        if !batch.rankSteps.isEmpty {
          let st = try d.cachedStatement(sql: Self.rankStepSQL)
          for r in batch.rankSteps {
            try RowBinder.insert(st, d) { b in
              b.bind(Int64(r.rank)); b.bind(Int64(r.firstStep)); b.bind(Int64(r.lastStep)); b.bind(Int64(r.steps))
              b.bind(Int64(bitPattern: r.ringIndex)); b.bind(Int64(bitPattern: r.timestampNs)); b.bind(r.wallTime)
              b.bindLittleEndian(r.histogram)
              let one = r.steps == 1
              for i in 0..<StepColumns.integral.count {
                let integral = StepColumns.integral[i]
                b.bind(r.mean[i], integral: integral && one)
                if one { b.bindNull(); b.bindNull() } else { b.bind(r.min[i], integral: integral); b.bind(r.max[i], integral: integral) }
              }
            }
          }
        }
        if !batch.events.isEmpty {
          let st = try d.cachedStatement(
            sql: "INSERT INTO events (rank, ring_index, step, timestamp_ns, wall_time, kind, text) VALUES (?, ?, ?, ?, ?, ?, ?)")
          for (e, wall) in batch.events {
            try st.execute(arguments: [e.rank, Int64(bitPattern: e.index), e.step, Int64(bitPattern: e.timestampNs), wall,
                                       e.kind.name, e.text])
          }
        }
        if !batch.shardStats.isEmpty {
          let st = try d.cachedStatement(
            sql: "INSERT OR REPLACE INTO shard_stats (rank, step, tensor, ring_index, timestamp_ns, weight_norm, grad_norm, update_ratio) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
          for t in batch.shardStats {
            for (k, n) in t.entries.enumerated() {
              try RowBinder.insert(st, d) { b in
                b.bind(Int64(t.rank)); b.bind(Int64(t.step)); b.bind(Int64(t.firstTensor + k))
                b.bind(Int64(bitPattern: t.index)); b.bind(Int64(bitPattern: t.timestampNs))
                for v in [n.weightNorm, n.gradNorm, n.updateRatio] { b.bind(Double(v), integral: false) }
              }
            }
          }
        }
        let best = bestLoss.map { Double($0) }
        try d.execute(
          sql: """
            UPDATE run SET state = ?, updated = ?, last_step = MAX(last_step, ?), final_loss = COALESCE(?, final_loss),
              best_loss = CASE WHEN ? IS NULL THEN best_loss WHEN best_loss IS NULL OR ? < best_loss THEN ? ELSE best_loss END,
              records_lost = records_lost + ?, hosts = COALESCE(?, hosts), ended = COALESCE(?, ended) WHERE id = 1
            """,
          arguments: StatementArguments([
            state, now, lastStep, finalLoss.map { Double($0) }, best, best, best, Int64(batch.lost), hosts, ended,
          ] as [(any DatabaseValueConvertible)?]))
      }
    } catch let e as DatabaseError {
      throw StoreError("run store \(path): \(e.message ?? "\(e.resultCode)")")
    } catch {
      throw StoreError("run store \(path): \(error)")
    }
    header.state = state
  }
}

/// Binds one row's values, in column order, into a prepared statement and runs it: what GRDB's
/// `StatementArguments` do, without boxing each value.
struct RowBinder {
  private let statement: OpaquePointer
  private var index: Int32 = 1
  private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

  /// Runs `statement` once with the values `fill` binds.
  /// - Throws: `DatabaseError` with SQLite's message.
  static func insert(_ statement: Statement, _ db: Database, _ fill: (inout RowBinder) -> Void) throws {
    let s = statement.sqliteStatement
    sqlite3_reset(s)
    var binder = RowBinder(statement: s)
    fill(&binder)
    let rc = sqlite3_step(s)
    sqlite3_reset(s)
    guard rc == SQLITE_DONE else {
      throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
    }
  }

  private init(statement: OpaquePointer) { self.statement = statement }

  mutating func bind(_ v: Int64) { sqlite3_bind_int64(statement, index, v); index += 1 }
  mutating func bind(_ v: Double) { sqlite3_bind_double(statement, index, v); index += 1 }
  mutating func bindNull() { sqlite3_bind_null(statement, index); index += 1 }
  /// A measured value: NULL when not finite, an integer when the column is integral and the value exact.
  mutating func bind(_ v: Double, integral: Bool) {
    if !v.isFinite { bindNull() } else if integral, v == v.rounded(), abs(v) < 9e18 { bind(Int64(v)) } else { bind(v) }
  }
  /// 32-bit words as a little-endian blob.
  mutating func bindLittleEndian(_ words: [UInt32]) {
    var bytes = [UInt8](repeating: 0, count: 4 * words.count)
    for (i, w) in words.enumerated() { withUnsafeBytes(of: w.littleEndian) { for k in 0..<4 { bytes[4 * i + k] = $0[k] } } }
    bytes.withUnsafeBytes { sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), Self.transient) }
    index += 1
  }
}

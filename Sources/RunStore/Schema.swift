// The run store's SQLite schema (version 2): one database file per run, `<run>.sqlite` in the
// store directory, in WAL mode. The Python writer creates the same tables with its standard
// `sqlite3` module (python/tptop_telemetry/store.py); docs/STORE.md describes every column.

/// The store's tables.
public enum StoreSchema {
  /// `PRAGMA user_version` of a store file this build writes and reads. Version 2 added
  /// `run.wall_minus_boot_ns` and the `tensors` table; a version 1 file reads (without them)
  /// and gains them when a restart reopens it (`migration`).
  public static let version = 2
  /// The file name suffix of a run's database.
  public static let fileSuffix = ".sqlite"

  /// Columns of a per-rank step row: exact values for a bucket of one step, else the bucket's
  /// mean, with `<name>_min` and `<name>_max` beside it (NULL for a one-step bucket).
  static var rankStepColumns: [String] {
    StepColumns.all.flatMap { [$0.column, $0.column + "_min", $0.column + "_max"] }
  }

  /// The job-level series, one row per step at full resolution.
  public static let seriesColumns = [
    "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "step_ns", "comm_exposed_ns", "comm_total_ns",
    "rss_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes",
  ]

  /// The statements that create an empty store file.
  static var creation: [String] {
    [
      """
      CREATE TABLE IF NOT EXISTS run (
        id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, job TEXT NOT NULL, writer TEXT NOT NULL,
        state TEXT NOT NULL, started REAL NOT NULL, ended REAL, updated REAL NOT NULL, incarnations INTEGER NOT NULL,
        world INTEGER NOT NULL, tp INTEGER NOT NULL, dp INTEGER NOT NULL, total_steps INTEGER NOT NULL,
        preset TEXT NOT NULL, layers INTEGER, heads INTEGER, channels INTEGER, vocab INTEGER, padded_vocab INTEGER,
        max_seq INTEGER, batch INTEGER, seq INTEGER, features INTEGER NOT NULL DEFAULT 0,
        command_line TEXT NOT NULL DEFAULT '', hosts TEXT NOT NULL DEFAULT '', recorder_pid INTEGER,
        budget_bytes INTEGER NOT NULL, bucket_steps INTEGER NOT NULL DEFAULT 1,
        last_step INTEGER NOT NULL DEFAULT 0, final_loss REAL, best_loss REAL,
        records_lost INTEGER NOT NULL DEFAULT 0, wall_minus_boot_ns INTEGER)
      """,
      "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
      "CREATE TABLE IF NOT EXISTS series (step INTEGER PRIMARY KEY, timestamp_ns INTEGER, wall_time REAL, ranks INTEGER, "
        + seriesColumns.joined(separator: ", ") + ")",
      "CREATE TABLE IF NOT EXISTS rank_steps (rank INTEGER NOT NULL, step INTEGER NOT NULL, last_step INTEGER NOT NULL, "
        + "steps INTEGER NOT NULL, ring_index INTEGER, timestamp_ns INTEGER, wall_time REAL, allreduce_hist BLOB, "
        + rankStepColumns.joined(separator: ", ") + ", PRIMARY KEY (rank, step)) WITHOUT ROWID",
      """
      CREATE TABLE IF NOT EXISTS events (rank INTEGER NOT NULL, ring_index INTEGER, step INTEGER NOT NULL,
        timestamp_ns INTEGER, wall_time REAL, kind TEXT NOT NULL, text TEXT NOT NULL DEFAULT '')
      """,
      """
      CREATE TABLE IF NOT EXISTS shard_stats (rank INTEGER NOT NULL, step INTEGER NOT NULL, tensor INTEGER NOT NULL,
        ring_index INTEGER, timestamp_ns INTEGER, weight_norm REAL, grad_norm REAL, update_ratio REAL,
        PRIMARY KEY (rank, step, tensor)) WITHOUT ROWID
      """,
      """
      CREATE TABLE IF NOT EXISTS tensors (tensor INTEGER PRIMARY KEY, name TEXT NOT NULL, shape TEXT NOT NULL,
        split TEXT NOT NULL, split_dim INTEGER, ranges TEXT NOT NULL, descriptions TEXT NOT NULL)
      """,
    ]
  }

  /// What brings a version 1 file to this version (after `creation`, which adds new tables).
  static let migration = [1: ["ALTER TABLE run ADD COLUMN wall_minus_boot_ns INTEGER"]]
}

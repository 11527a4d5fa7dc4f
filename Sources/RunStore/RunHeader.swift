// A run's description as the store keeps it: the `run` row and the `settings` table.

import JobSchema
import Telemetry

/// Everything the store knows about a run besides its records.
public struct RunHeader: Sendable, Equatable {
  /// Run name (the file is `<name>.sqlite`).
  public var name: String
  /// The telemetry job it was recorded from (the latest incarnation's).
  public var job: String
  /// `tptrain` or `python`.
  public var writer: String
  /// `running`, `paused`, `checkpointing`, `finished`, `failed`, … (`JobPhase.Word`).
  public var state: String
  /// Unix seconds.
  public var started: Double
  public var ended: Double?
  /// When the recorder last wrote, Unix seconds.
  public var updated: Double
  /// Launches recorded into this run (restarts of the same job add one).
  public var incarnations: Int = 1
  public var world: Int
  public var tp: Int
  public var dp: Int
  public var totalSteps: Int
  public var preset: String
  public var model: ModelShape?
  public var features: RunFeatures = RunFeatures()
  public var commandLine: String = ""
  /// Host names of the ranks, comma separated, in first-seen order.
  public var hosts: String = ""
  public var recorderPid: Int32 = 0
  public var budgetBytes: Int
  /// Steps per per-rank row (1 unless the run is too long or wide for its budget).
  public var bucketSteps: Int = 1
  public var lastStep: Int = 0
  public var finalLoss: Float?
  public var bestLoss: Float?
  /// Records the rings overwrote before the recorder read them (0 for a complete run).
  public var recordsLost: Int = 0
  /// Flags of the run (`--lr` → `lr`), for `tptop compare`'s table of what differs.
  public var settings: [String: String] = [:]
  /// CLOCK_REALTIME − CLOCK_MONOTONIC in ns, measured by the recorder when it started: what
  /// dates the rings' boot-clock timestamps, also after a reboot (nil in a schema 1 file).
  public var wallMinusBootNs: Int64?
  /// The shard layout of the segment's job description (the `tensors` table).
  public var tensors: [ShardedTensor] = []

  public init(name: String, job: String, writer: String, state: String, started: Double, world: Int, tp: Int, dp: Int,
              totalSteps: Int, preset: String, budgetBytes: Int) {
    self.name = name
    self.job = job
    self.writer = writer
    self.state = state
    self.started = started
    self.updated = started
    self.world = world
    self.tp = tp
    self.dp = dp
    self.totalSteps = totalSteps
    self.preset = preset
    self.budgetBytes = budgetBytes
  }

  /// Whether the run can still grow (its recorder last said so).
  public var isLive: Bool { JobPhase.Word(rawValue: state).map { JobPhase.liveWords.contains($0) } ?? true }

  /// The flags of a command line as settings: `--key value` and `--flag` (= `true`).
  public static func settings(fromArguments args: [String]) -> [String: String] {
    var out: [String: String] = [:]
    var i = 0
    while i < args.count {
      let a = args[i]
      guard a.hasPrefix("--"), a.count > 2 else { i += 1; continue }
      let key = String(a.dropFirst(2))
      if let eq = key.firstIndex(of: "=") {
        out[String(key[..<eq])] = String(key[key.index(after: eq)...])
        i += 1
      } else if i + 1 < args.count, !args[i + 1].hasPrefix("--") {
        out[key] = args[i + 1]
        i += 2
      } else {
        out[key] = "true"
        i += 1
      }
    }
    return out
  }
}

// The one table of a step's fields: for each, its name, unit, how to read it from the record,
// how every renderer names and formats it. `tptrain --log`, `tptop export` (JSON lines and CSV),
// `tptop watch`, the run store's per-rank columns, the metrics endpoint's per-rank gauges and
// TensorBoard's per-rank tags all walk this table; a new metric is one field in `StepMetrics`,
// its place in the record encoding (Telemetry/Records.swift and the Python writer's
// records.py, which a test holds to this table), and one entry here.

import Glibc

/// One field of a step, as every renderer shows it.
public struct StepField: Sendable {
  /// What the number counts.
  public enum Unit: String, Sendable {
    case number, tokens, count, nanoseconds, microseconds, bytes, fraction, gflops
    case tokensPerSecond = "tokens/s"
  }

  /// The field's form in `tptrain --log` lines and in the export's log-named columns: its key,
  /// how to read it (times in ms) and its printf format.
  public struct LogForm: Sendable {
    public let key: String
    public let format: String
    let read: @Sendable (StepMetrics) -> Double
    /// Whether the value counts tokens per second: a line for the whole job (`--log`, written
    /// by world rank 0) multiplies the replica's rate by d, as `jobTokensPerSecond` does.
    public let isRate: Bool
    /// The value as the log writes it for a line that speaks for `replicas` DP replicas (1: one
    /// rank's record, as the export writes it).
    public func value(_ m: StepMetrics, replicas: Int = 1) -> Double {
      isRate ? StepMetrics.jobTokensPerSecond(replicaRates: [read(m)], dp: replicas) ?? 0 : read(m)
    }
    /// The text of the value (`null` when not finite: JSON has no NaN).
    public func text(_ m: StepMetrics, replicas: Int = 1) -> String {
      let v = value(m, replicas: replicas)
      return v.isFinite ? StepFields.printf(format, v) : "null"
    }
  }

  /// How a per-rank Prometheus gauge shows it: the family's name, an extra label, and the
  /// factor from the field's unit to the family's (seconds, bytes).
  public struct MetricForm: Sendable {
    public let family: String
    public let label: (name: String, value: String)?
    public let scale: Double

    /// `v` in the family's unit. A scale below one divides by its (whole) reciprocal: 1e-9 is not
    /// a binary fraction, so 38 164 723 ns × 1e-9 reads 0.038164723000000005 s where
    /// 38 164 723 / 1e9 reads 0.038164723, the number a person expects.
    public func scaled(_ v: Double) -> Double {
      scale < 1 && scale > 0 ? v / (1 / scale).rounded() : v * scale
    }
  }

  /// The export key (JSON lines, CSV) and, for a field of the record, the run store's column
  /// (`column` differs only where an older name is kept there).
  public let name: String
  /// Older export keys written beside `name` with the same value, so existing readers keep
  /// working (`allreduce_count` beside `collective_count`).
  public let aliases: [String]
  public let unit: Unit
  /// Whether the value is an integer (stored as INTEGER; bucket means are REAL).
  public let integral: Bool
  /// Whether the record carries it (false: derived from other fields, e.g. tokens/s).
  public let recorded: Bool
  /// Its forms in `--log` lines (empty: the log leaves it out).
  public let log: [LogForm]
  /// Its per-rank TensorBoard tag, and the factor to the tag's unit; nil: not written there.
  public let tensorBoard: (tag: String, scale: Double)?
  /// Its per-rank gauge at the metrics endpoint; nil: not exposed there.
  public let metric: MetricForm?
  /// Its name in `tptop watch` lines; nil: watch leaves it out.
  public let watch: String?
  let read: @Sendable (StepMetrics) -> Double
  let write: (@Sendable (inout StepMetrics, Double) -> Void)?

  /// The store's column name: the first older name when there is one (the store's schema keeps
  /// its names), else `name`.
  public var column: String { aliases.first ?? name }

  /// The field's value in `m`, as a Double (every integer field fits exactly below 2^53).
  public func value(_ m: StepMetrics) -> Double { read(m) }

  /// Stores `v` into the field of `m` (rounded for integers); no effect for a derived field.
  public func assign(_ v: Double, to m: inout StepMetrics) { write?(&m, v) }

  /// The export's text of the value: an integer as digits, a real as Swift prints a Float,
  /// `null` when not finite (JSON has no NaN).
  public func exportText(_ m: StepMetrics) -> String {
    let v = read(m)
    if integral { return "\(Int64(exactly: v.rounded()) ?? 0)" }
    let f = Float(v)
    return f.isFinite ? "\(f)" : "null"
  }

  /// Whether any of `steps` carries the field: a writer that does not measure it leaves it 0
  /// in every record (a Python loop without collectives, an untimed step), which renderers
  /// show as not reported ("–"), never as a measured zero. The loss is always reported.
  public func reported<S: Sequence>(in steps: S) -> Bool where S.Element == StepMetrics {
    name == "loss" || steps.contains { read($0) != 0 }
  }
}

/// The table.
public enum StepFields {
  /// `v` through the printf format `format` (one double conversion).
  public static func printf(_ format: String, _ v: Double) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    let n = withVaList([v]) { vsnprintf(&buffer, buffer.count, format, $0) }
    return n >= 0 && n < buffer.count ? String(cString: buffer) : "\(v)"
  }

  static func ms(_ key: String, _ ns: @escaping @Sendable (StepMetrics) -> UInt64) -> StepField.LogForm {
    StepField.LogForm(key: key, format: "%.4f", read: { Double(ns($0)) / 1e6 }, isRate: false)
  }
  static func plain(_ key: String, _ format: String) -> (@escaping @Sendable (StepMetrics) -> Double) -> StepField.LogForm {
    { read in StepField.LogForm(key: key, format: format, read: read, isRate: key == "tokens_per_s") }
  }
  static func gauge(_ family: String, _ scale: Double = 1, label: (String, String)? = nil) -> StepField.MetricForm {
    StepField.MetricForm(family: family, label: label.map { (name: $0.0, value: $0.1) }, scale: scale)
  }

  /// How an integer field is read and written on `StepMetrics`: one accessor per stored width,
  /// with concrete conversions (the recorder reads every field of every record: no generic code
  /// on that path).
  struct IntegerAccess {
    let read: @Sendable (StepMetrics) -> Double
    let write: @Sendable (inout StepMetrics, Double) -> Void
  }
  static func int(_ k: WritableKeyPath<StepMetrics, Int> & Sendable) -> IntegerAccess {
    IntegerAccess(read: { Double($0[keyPath: k]) },
                  write: { m, v in m[keyPath: k] = v.isFinite ? Int(Swift.max(Swift.min(v.rounded(), 9.2e18), -9.2e18)) : 0 })
  }
  static func word(_ k: WritableKeyPath<StepMetrics, UInt64> & Sendable) -> IntegerAccess {
    IntegerAccess(read: { Double($0[keyPath: k]) },
                  write: { m, v in m[keyPath: k] = v.isFinite && v >= 0 ? UInt64(Swift.min(v.rounded(), 1.8e19)) : 0 })
  }
  static func half(_ k: WritableKeyPath<StepMetrics, UInt32> & Sendable) -> IntegerAccess {
    IntegerAccess(read: { Double($0[keyPath: k]) },
                  write: { m, v in m[keyPath: k] = v.isFinite && v >= 0 ? UInt32(Swift.min(v.rounded(), 4e9)) : 0 })
  }
  static func field(
    _ name: String, aliases: [String] = [], _ unit: StepField.Unit, _ access: IntegerAccess,
    log: [StepField.LogForm] = [], tensorBoard: (String, Double)? = nil, metric: StepField.MetricForm? = nil, watch: String? = nil
  ) -> StepField {
    StepField(name: name, aliases: aliases, unit: unit, integral: true, recorded: true, log: log,
              tensorBoard: tensorBoard.map { (tag: $0.0, scale: $0.1) }, metric: metric, watch: watch,
              read: access.read, write: access.write)
  }
  static func real(
    _ name: String, _ unit: StepField.Unit, _ k: WritableKeyPath<StepMetrics, Float> & Sendable,
    log: [StepField.LogForm] = [], tensorBoard: (String, Double)? = nil, metric: StepField.MetricForm? = nil, watch: String? = nil
  ) -> StepField {
    StepField(name: name, aliases: [], unit: unit, integral: false, recorded: true, log: log,
              tensorBoard: tensorBoard.map { (tag: $0.0, scale: $0.1) }, metric: metric, watch: watch,
              read: { Double($0[keyPath: k]) }, write: { m, v in m[keyPath: k] = Float(v) })
  }
  static func derived(
    _ name: String, _ unit: StepField.Unit, log: [StepField.LogForm], tensorBoard: (String, Double)? = nil,
    metric: StepField.MetricForm? = nil, watch: String? = nil, _ read: @escaping @Sendable (StepMetrics) -> Double
  ) -> StepField {
    StepField(name: name, aliases: [], unit: unit, integral: false, recorded: false, log: log,
              tensorBoard: tensorBoard.map { (tag: $0.0, scale: $0.1) }, metric: metric, watch: watch, read: read, write: nil)
  }

  /// Every field, in export order: the record's fields (the store's columns, in their order),
  /// then the derived ones.
  public static let all: [StepField] = [
    real("loss", .number, \.loss, log: [plain("loss", "%.9g")({ Double($0.loss) })], metric: gauge("tptop_loss"), watch: "loss"),
    real("lr", .number, \.lr, log: [plain("lr", "%.9g")({ Double($0.lr) })], metric: gauge("tptop_learning_rate"), watch: "lr"),
    real("grad_norm", .number, \.gradNorm, log: [plain("grad_norm", "%.9g")({ Double($0.gradNorm) })],
         metric: gauge("tptop_grad_norm"), watch: "gnorm"),
    field("tokens", .tokens, int(\.tokens), log: [plain("tokens", "%.0f")({ Double($0.tokens) })]),
    field("step_ns", .nanoseconds, word(\.stepNs), log: [ms("step_ms", \.stepNs)], tensorBoard: ("perf/step_ms", 1e-6),
          metric: gauge("tptop_step_seconds", 1e-9), watch: "slowest"),
    field("forward_ns", .nanoseconds, word(\.forwardNs), log: [ms("forward_ms", \.forwardNs)]),
    field("backward_ns", .nanoseconds, word(\.backwardNs), log: [ms("backward_ms", \.backwardNs)]),
    field("optimizer_ns", .nanoseconds, word(\.optimizerNs), log: [ms("optimizer_ms", \.optimizerNs)]),
    // exposed communication; `comm_ms` is the same value under the log's first name
    field("comm_ns", .nanoseconds, word(\.commNs), log: [ms("comm_ms", \.commNs), ms("comm_exposed_ms", \.commNs)],
          tensorBoard: ("comm/exposed_ms", 1e-6), metric: gauge("tptop_comm_exposed_seconds", 1e-9), watch: "exposed max"),
    field("data_ns", .nanoseconds, word(\.dataNs), log: [ms("data_ms", \.dataNs)]),
    // every collective (all-reduce, reduce-scatter, all-gather); `allreduce_count` is its older
    // name, kept in the export and the store
    field("collective_count", aliases: ["allreduce_count"], .count, int(\.allReduceCount),
          log: [plain("allreduce_count", "%.0f")({ Double($0.allReduceCount) }),
                plain("collective_count", "%.0f")({ Double($0.allReduceCount) })]),
    field("allreduce_bytes", .bytes, word(\.allReduceBytes), log: [plain("allreduce_bytes", "%.0f")({ Double($0.allReduceBytes) })]),
    field("allreduce_total_ns", .nanoseconds, word(\.allReduceTotalNs), log: [ms("allreduce_total_ms", \.allReduceTotalNs)],
          tensorBoard: ("comm/in_flight_ms", 1e-6)),
    field("allreduce_max_ns", .nanoseconds, word(\.allReduceMaxNs), log: [ms("allreduce_max_ms", \.allReduceMaxNs)],
          watch: "allreduce max"),
    field("rss_bytes", .bytes, word(\.rssBytes), log: [plain("rss_bytes", "%.0f")({ Double($0.rssBytes) })],
          tensorBoard: ("memory/rss_bytes", 1), metric: gauge("tptop_memory_bytes", label: ("kind", "rss"))),
    field("param_bytes", .bytes, word(\.paramBytes), log: [plain("param_bytes", "%.0f")({ Double($0.paramBytes) })],
          tensorBoard: ("memory/param_bytes", 1), metric: gauge("tptop_memory_bytes", label: ("kind", "params"))),
    field("grad_bytes", .bytes, word(\.gradBytes), log: [plain("grad_bytes", "%.0f")({ Double($0.gradBytes) })],
          tensorBoard: ("memory/grad_bytes", 1), metric: gauge("tptop_memory_bytes", label: ("kind", "grads"))),
    field("optimizer_bytes", .bytes, word(\.optimizerBytes), log: [plain("optimizer_bytes", "%.0f")({ Double($0.optimizerBytes) })],
          tensorBoard: ("memory/optimizer_bytes", 1), metric: gauge("tptop_memory_bytes", label: ("kind", "optimizer"))),
    field("activation_bytes", .bytes, word(\.activationBytes), log: [plain("activation_bytes", "%.0f")({ Double($0.activationBytes) })],
          tensorBoard: ("memory/activation_bytes", 1), metric: gauge("tptop_memory_bytes", label: ("kind", "activations"))),
    real("compute_busy", .fraction, \.computeBusy, log: [plain("compute_busy", "%.4f")({ Double($0.computeBusy) })],
         tensorBoard: ("perf/compute_busy", 1)),
    real("gflops", .gflops, \.gflops, log: [plain("gflops", "%.3f")({ Double($0.gflops) })], tensorBoard: ("perf/gflops", 1)),
    field("comm_peer_wait_us", .microseconds, half(\.commPeerWaitMicros), log: [ms("comm_peer_wait_ms", \.commPeerWaitNs)],
          tensorBoard: ("comm/peer_wait_ms", 1e-3)),
    derived("tokens_per_s", .tokensPerSecond, log: [plain("tokens_per_s", "%.2f")(\.tokensPerSecond)],
            metric: gauge("tptop_tokens_per_second"), watch: "tok/s", \.tokensPerSecond),
    // in flight, exposed or hidden (never below comm_ns); watch shows the hidden part
    derived("comm_total_ns", .nanoseconds, log: [ms("comm_total_ms", \.commTotalNs)],
            metric: gauge("tptop_comm_in_flight_seconds", 1e-9), watch: "hidden") { Double($0.commTotalNs) },
  ]

  /// The fields the record carries, in the store's column order.
  public static let recorded: [StepField] = all.filter(\.recorded)

  /// The field named `name` (or with the older name `name`), nil when there is none.
  public static func named(_ name: String) -> StepField? { all.first { $0.name == name || $0.aliases.contains(name) } }

  /// The per-rank TensorBoard scalars: each field with a tag, its tag and scale.
  public static var tensorBoardRank: [(field: StepField, tag: String, scale: Double)] {
    all.compactMap { f in f.tensorBoard.map { (f, $0.tag, $0.scale) } }
  }

  /// Every `--log` key of the fields, in log order.
  public static var logKeys: [String] { all.flatMap { $0.log.map(\.key) } }
}

extension StepMetrics {
  /// Tokens of this rank's DP replica per second of its step time; 0 for an untimed step. The
  /// one definition of a step's rate: the log, export, watch, the dashboard, the store and the
  /// endpoint all use it.
  public var tokensPerSecond: Double { stepNs > 0 ? Double(tokens) / (Double(stepNs) / 1e9) : 0 }

  /// The job's rate from its data-parallel replicas' rates (one TP rank's each): the replicas
  /// step together, so d × their mean (a namespace that sees only some replicas still counts
  /// all d). Nil when no replica's rate is known.
  public static func jobTokensPerSecond(replicaRates: [Double], dp: Int) -> Double? {
    let known = replicaRates.filter { $0 > 0 }
    guard !known.isEmpty else { return nil }
    return known.reduce(0, +) / Double(known.count) * Double(max(dp, 1))
  }
}

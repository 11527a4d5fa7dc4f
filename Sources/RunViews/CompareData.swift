// What `tptop compare` shows, apart from drawing: runs loaded from the store or from a
// TensorBoard log directory as named series against step, tokens and wall time; TensorBoard's
// smoothing; the table of settings that differ and of each run's final, best and recent loss.

import Foundation
import RunStore
import TensorBoard

/// One run's series for comparison.
package struct ComparedRun {
  package var name: String
  package var settings: [String: String]
  /// Series by name ("loss", "lr", …, or a TensorBoard tag): (step, tokens so far, wall time, value).
  package var series: [String: [(step: Double, tokens: Double, wall: Double, value: Double)]]

  /// The series names `compare` cycles through, those a stored run has first.
  package static let preferred = ["loss", "lr", "grad_norm", "tokens_per_s", "step_ms", "comm_exposed_ms", "rss_bytes"]

  /// Points kept per series: a chart has at most a few hundred dot columns, and the losses
  /// the table shows are computed over every step while reading.
  package static let maxPoints = 4096

  /// A stored run's job-level series (`StoreSchema.seriesColumns`; times in ms), read in one
  /// pass in bounded memory: at most `maxPoints` means of consecutive steps per series.
  package static func stored(_ run: StoredRun) throws -> ComparedRun {
    let h = run.header
    var settings = h.settings
    // the grid row says t and d for every run (a --tp or --dp flag only where it was given)
    settings["tp"] = nil
    settings["dp"] = nil
    settings["grid"] = "tp \(h.tp) × dp \(h.dp)"
    settings["preset"] = h.preset
    if let m = h.model { settings["model"] = "L\(m.layers) H\(m.heads) C\(m.channels)" }
    if !h.features.labels.isEmpty { settings["features"] = h.features.labels.joined(separator: " ") }
    let names: [(column: String, name: String, scale: Double)] = [
      ("loss", "loss", 1), ("lr", "lr", 1), ("grad_norm", "grad_norm", 1), ("tokens_per_s", "tokens_per_s", 1),
      ("step_ns", "step_ms", 1e-6), ("comm_exposed_ns", "comm_exposed_ms", 1e-6), ("rss_bytes", "rss_bytes", 1),
    ]
    // SQLite averages windows of consecutive steps: at most `maxPoints` per series, read
    // without decoding every row here; the losses of the table are summed up over every step
    let per = max(1, ((try run.seriesSpan()?.count ?? 0) + maxPoints - 1) / maxPoints)
    var out = ComparedRun(name: run.name, settings: settings, series: [:])
    var tokens = 0.0
    var columns = names.map { _ in [(step: Double, tokens: Double, wall: Double, value: Double)]() }
    try run.seriesWindows(window: per, columns: names.map(\.column)) { last, wall, windowTokens, means in
      tokens += windowTokens
      for k in names.indices { columns[k].append((Double(last), tokens, wall, means[k] * names[k].scale)) }
    }
    for (k, n) in names.enumerated() { out.series[n.name] = columns[k] }
    let loss = try run.lossSummary()
    out.lossStats = LossStats(final: loss.final, best: loss.best, count: loss.count, recentMean: loss.recentMean)
    return out
  }

  /// A TensorBoard run (a directory of event files): its scalar tags, `train/loss` as `loss`
  /// and the other tags tptop writes by their store names; tokens are not known (steps instead).
  package static func tensorBoard(name: String, files: [String], problems: inout [String]) throws -> ComparedRun {
    let renamed = Dictionary(uniqueKeysWithValues: TensorBoardTags.series.map { ($0.tag, $0.column) })
      .merging(["perf/step_ms": "step_ms", "comm/exposed_ms": "comm_exposed_ms", "memory/rss_bytes": "rss_bytes"]) { _, b in b }
    var out = ComparedRun(name: name, settings: [:], series: [:])
    for f in files {
      let reader = try EventFileReader(path: f)
      try reader.readScalars { e in
        let key = renamed[e.tag] ?? e.tag
        out.series[key, default: []].append((Double(e.step), Double(e.step), e.wallTime, e.value))
      }
      if let p = reader.problem { problems.append(p) }
    }
    for k in out.series.keys { out.series[k]?.sort { $0.step < $1.step } }
    return out
  }

  /// Final, best and recent loss over every step read (a stored run's series may be kept in
  /// fewer points than it has steps).
  package var lossStats: LossStats?

  private var stats: LossStats {
    if let s = lossStats { return s }
    var s = LossStats()
    for p in series["loss"] ?? [] { s.add(p.value) }
    return s
  }
  package var finalLoss: Double? { stats.final }
  package var bestLoss: Double? { stats.best }
  /// Mean of the last 100 losses.
  package var recentLoss: Double? { stats.recentMean }
  /// Steps with a loss.
  package var lossSteps: Int { stats.count }
}

/// Final, best and last-100-mean of a loss series, in one pass and constant memory.
package struct LossStats {
  private(set) var final: Double?
  private(set) var best: Double?
  private(set) var count = 0
  private var recent = [Double](repeating: 0, count: 100)
  /// The recent mean when the summary was given whole (a stored run's, summed up by SQLite).
  private var givenRecentMean: Double?

  package init() {}

  /// A summary computed elsewhere.
  package init(final: Double?, best: Double?, count: Int, recentMean: Double?) {
    self.final = final
    self.best = best
    self.count = count
    givenRecentMean = recentMean
  }

  package mutating func add(_ v: Double) {
    guard v.isFinite else { return }
    final = v
    if v < (best ?? .infinity) { best = v }
    recent[count % 100] = v
    count += 1
  }

  package var recentMean: Double? {
    if let givenRecentMean { return givenRecentMean }
    guard count > 0 else { return nil }
    let n = min(count, 100)
    return recent.prefix(n).reduce(0, +) / Double(n)
  }
}

/// TensorBoard's scalar smoothing: an exponential moving average with weight `w` (0 = none),
/// debiased so the first points are not pulled toward zero; non-finite values pass through.
package func smoothed(_ values: [Double], weight w: Double) -> [Double] {
  guard w > 0 else { return values }
  var last = 0.0
  var n = 0.0
  return values.map { v in
    guard v.isFinite else { return v }
    last = last * w + (1 - w) * v
    n += 1
    return last / (1 - pow(w, n))
  }
}

/// A run's value of setting `key` as the table shows it: a flag the run was not given reads
/// `default` (`none` for features), and every setting of a run that records none (a
/// TensorBoard run) `n/a`.
package func settingText(_ run: ComparedRun, _ key: String) -> String {
  if let v = run.settings[key] { return v }
  if run.settings.isEmpty { return "n/a" }
  return key == "features" ? "none" : "default"
}

/// The comparison table: settings that differ between the runs, then the losses.
package func compareTable(_ runs: [ComparedRun]) -> [[String]] {
  let keys = Set(runs.flatMap { $0.settings.keys }).sorted().filter { k in
    Set(runs.map { settingText($0, k) }).count > 1
  }
  func loss(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "-" }
  // the losses first: a screen too short for the whole table cuts settings, not results
  var rows = [["run"] + runs.map(\.name)]
  rows.append(["final loss"] + runs.map { loss($0.finalLoss) })
  rows.append(["best loss"] + runs.map { loss($0.bestLoss) })
  rows.append(["last-100 mean"] + runs.map { loss($0.recentLoss) })
  rows.append(["steps run"] + runs.map { "\($0.lossSteps)" })  // beside a differing "steps" setting (planned)
  rows += keys.map { k in [k] + runs.map { settingText($0, k) } }
  return rows
}

/// Aligned text of a table (the first column left, the others right-aligned).
package func alignedTable(_ rows: [[String]]) -> [String] {
  guard let first = rows.first else { return [] }
  let widths = first.indices.map { c in rows.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
  return rows.map { row in
    row.enumerated().map { c, v in
      c == 0 ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0)
        : String(repeating: " ", count: max(0, widths[c] - v.count)) + v
    }.joined(separator: "  ")
  }
}

// One line of `tptrain --log` (JSON Lines, world rank 0, one object per step): every log form of
// the step field table (JobSchema's `StepFields`: the same names and units `tptop export` gives
// its log-named columns), then what only the trainer knows.

import Foundation
import JobSchema

/// The `--log` line of a step.
public enum StepLog {
  /// The JSON object (no newline): `step`, each field's log forms (tokens/s for the whole job:
  /// the replica's rate × `dp`), `skipped_steps`, `cycle_ms` and the wall clock (`unix_ns`,
  /// `time`). A value that is not finite is written as `null` (JSON has no NaN).
  public static func line(step: Int, metrics: StepMetrics, dp: Int, skippedSteps: Int, cycleNs: UInt64, unixNs: Int64) -> String {
    var line = "{\"step\":\(step)"
    for f in StepFields.all {
      for l in f.log { line += ",\"\(l.key)\":" + l.text(metrics, replicas: dp) }
    }
    return line + ",\"skipped_steps\":\(skippedSteps),\"cycle_ms\":" + String(format: "%.4f", Double(cycleNs) / 1e6)
      + ",\"unix_ns\":\(unixNs),\"time\":\"" + WallClock.iso8601(unixNs: unixNs) + "\"}"
  }

  /// The keys of every line, in order.
  public static var keys: [String] { ["step"] + StepFields.logKeys + ["skipped_steps", "cycle_ms", "unix_ns", "time"] }
}

// The tags tptop writes a stored run's job-level scalars under, and reads TensorBoard runs by:
// each row a series column (RunStore's names), its tag and the factor from the stored unit (ns)
// to the tag's (ms). The per-rank tags are the step field table's (JobSchema's `StepFields`).

/// The scalars of a stored run's event files: the job-level series in `DIR/job`, each rank's
/// own values in `DIR/rank<r>` (TensorBoard shows each directory as a run).
public enum TensorBoardTags {
  /// Job-level tags, by `StoreSchema.seriesColumns` name, with the factor from the stored unit.
  public static let series: [(column: String, tag: String, scale: Double)] = [
    ("loss", "train/loss", 1), ("lr", "train/lr", 1), ("grad_norm", "train/grad_norm", 1),
    ("step_ns", "perf/step_ms", 1e-6), ("tokens_per_s", "perf/tokens_per_s", 1),
    ("comm_exposed_ns", "comm/exposed_ms", 1e-6), ("comm_total_ns", "comm/in_flight_ms", 1e-6),
    ("rss_bytes", "memory/rss_bytes", 1), ("param_bytes", "memory/param_bytes", 1),
    ("grad_bytes", "memory/grad_bytes", 1), ("optimizer_bytes", "memory/optimizer_bytes", 1),
    ("activation_bytes", "memory/activation_bytes", 1),
  ]
  // Per-rank tags: the step field table's (`StepField.tensorBoard`, JobSchema).
}

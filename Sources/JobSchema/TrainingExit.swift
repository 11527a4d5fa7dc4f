/// tptrain's exit statuses, which the supervisor decides by (mpirun passes on the first failed
/// rank's; tptrain's ranks agree on one before they exit, so any rank's is the job's).
public enum TrainingExit: Int32, Sendable, CaseIterable {
  /// Finished, or stopped on request.
  case success = 0
  /// A set-up or run-time error (its line on stderr names it).
  case failed = 1
  /// A flag out of range or that does not parse.
  case usage = 2
  /// A non-finite loss or gradient norm under `--on-nonfinite stop`: a restart would meet it again.
  case nonFinite = 3
  /// The telemetry job name is taken (a segment of that name exists): another name may start.
  case jobNameTaken = 4
}

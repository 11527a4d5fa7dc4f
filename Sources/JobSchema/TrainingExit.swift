/// tptrain's exit statuses, which the supervisor decides by (mpirun passes on the first failed
/// rank's; tptrain's ranks agree on one before they exit, so any rank's is the job's).
public enum TrainingExit: Int32, Sendable, CaseIterable {
  /// Finished, or stopped on request.
  case success = 0
  /// A run-time error (its line on stderr names it): a rank failed while training.
  case failed = 1
  /// A flag out of range or that does not parse.
  case usage = 2
  /// A non-finite loss or gradient norm under `--on-nonfinite stop`: a restart would meet it again.
  case nonFinite = 3
  /// The telemetry job name is taken (a segment of that name exists): another name may start.
  case jobNameTaken = 4
  /// A set-up error every rank agreed on before step 1 (data that cannot be read, a checkpoint
  /// that contradicts the flags, an output that cannot be written, a grid the model cannot
  /// split over): a restart would meet it again.
  case setup = 5
  /// An output every rank agreed it cannot write while training (a checkpoint, `--save`, the
  /// `--log` file): a restart would fail at the same place.
  case outputFailed = 6

  /// swift-argument-parser's status for a flag it cannot parse (EX_USAGE).
  public static let unparsedFlag: Int32 = 64

  /// Whether `status` says the same command would fail again (a flag that does not parse or is
  /// out of range, a set-up error, an output that cannot be written).
  public static func wouldRecur(_ status: Int32) -> Bool {
    status == usage.rawValue || status == setup.rawValue || status == outputFailed.rawValue || status == unparsedFlag
  }
}

/// The tptrain flags other programs write into its command line (the supervisor rewrites them
/// for each incarnation): one spelling, shared with tptrain's parser.
public enum TrainingFlag: String, Sendable, CaseIterable {
  case job
  case resume
  case checkpointDir = "checkpoint-dir"
  case initFrom = "init-from"
  case noTelemetry = "no-telemetry"

  /// The flag as typed: "--checkpoint-dir".
  public var flag: String { "--" + rawValue }
}

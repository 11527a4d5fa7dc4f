import Foundation

// Which program starts a job's ranks. mpirun runs tptrain (LaunchPlan.mpirunArguments);
// torchrun runs a Python script that writes the segment with python/tptop_telemetry.

/// The program that starts the ranks of a launched job.
public enum Runner: String, CaseIterable, Sendable {
  /// `mpirun … tptrain`: the engine's own ranks.
  case mpirun
  /// `torchrun --standalone --nproc_per_node N SCRIPT ARGS`: a PyTorch (or any Python) job.
  case torchrun

  /// The command line (program first) that starts `plan` with this runner; nil for mpirun,
  /// whose command line the launcher builds itself.
  /// - Throws: `LaunchError` (one line) when the runner cannot be found.
  public func command(for plan: LaunchPlan) throws -> [String]? {
    switch self {
    case .mpirun:
      return nil
    case .torchrun:
      guard let env = Executables.find("env", nextToSelf: false) else {
        throw LaunchError("env not found on PATH: cannot pass the job name to torchrun")
      }
      let launcher = try Runner.torchrunLauncher(python: plan.python)
      return [env] + plan.torchrunEnvironment + launcher + plan.torchrunArguments
    }
  }

  /// The program that starts torchrun's ranks, so that the job runs the torch of the Python the
  /// user works in: `--python PATH` as `PATH -m torch.distributed.run`; else the torchrun of
  /// the active virtual environment (`$VIRTUAL_ENV`, then `$CONDA_PREFIX`); else the torchrun
  /// beside the first `python3` on PATH (or that python3 with `-m torch.distributed.run`); else
  /// any torchrun on PATH. `isExecutable` is the file test (tests pass a fake file system).
  /// - Throws: `LaunchError` (one line) when `--python` is not an executable or nothing is found.
  public static func torchrunLauncher(
    python: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
    isExecutable: (String) -> Bool = { FileManager.default.isExecutableFile(atPath: $0) }
  ) throws -> [String] {
    if let python {
      guard isExecutable(python) else {
        throw LaunchError("--python \(python): not an executable Python interpreter")
      }
      return [python, "-m", "torch.distributed.run"]
    }
    for key in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
      guard let root = environment[key], !root.isEmpty else { continue }
      if isExecutable(root + "/bin/torchrun") { return [root + "/bin/torchrun"] }
      if isExecutable(root + "/bin/python3") { return [root + "/bin/python3", "-m", "torch.distributed.run"] }
    }
    let path = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
    if let dir = path.first(where: { isExecutable($0 + "/python3") }) {
      if isExecutable(dir + "/torchrun") { return [dir + "/torchrun"] }
      return [dir + "/python3", "-m", "torch.distributed.run"]
    }
    if let dir = path.first(where: { isExecutable($0 + "/torchrun") }) { return [dir + "/torchrun"] }
    throw LaunchError(
      "neither torchrun nor python3 found on PATH: install PyTorch (apt-get install python3-torch) or pass --python PATH")
  }
}

extension LaunchPlan {
  /// What a script learns from tptop: the job name (`tptop_telemetry.Job` reads TPTOP_JOB)
  /// and the grid, as `env` assignments.
  public var torchrunEnvironment: [String] {
    ["TPTOP_JOB=\(job)", "TPTOP_TP=\(tp)", "TPTOP_DP=\(dp)"]
  }

  /// torchrun's arguments: one node, `np` local ranks, then the script and its arguments.
  /// The spellings (`--nproc_per_node`) are the ones every torchrun accepts. `--redirects 1
  /// --tee 1` copies each rank's stdout to the log with a rank prefix; it also avoids the
  /// default "0", which some torch builds (1.13 on Python 3.11) cannot parse.
  public var torchrunArguments: [String] {
    ["--standalone", "--nnodes", "1", "--nproc_per_node", String(np), "--redirects", "1", "--tee", "1"]
      + trainArguments
  }
}

// The checkpoint directory layout: DIR/step_<8 digits>/{model.bin, state.bin, manifest.json}.
//
// These are the rules tptrain writes by (through TPEngine's CheckpointStore) and that every other
// program reads by (the supervisor looks up the latest checkpoint with them). They need no MPI, so
// they live here, under both.

import Foundation

/// Naming and discovery of checkpoint directories.
public enum Checkpoints {
  /// Where checkpoints go when neither --checkpoint-dir nor --resume names a directory.
  public static let defaultDirectory = "checkpoints"
  /// The `format` field of every manifest.
  public static let format = "tptop-checkpoint"
  /// The name of the checksum algorithm recorded in manifests (TPEngine's `FNV1a64`).
  public static let checksumAlgorithm = "fnv1a64-words"
  /// The model file of a checkpoint (llm.c format).
  public static let modelFile = "model.bin"
  /// The optimizer and training-state file of a checkpoint.
  public static let stateFile = "state.bin"
  /// The manifest file of a checkpoint: written last, so a directory with one is complete.
  public static let manifestFile = "manifest.json"

  /// "step_00000100".
  public static func directoryName(step: Int) -> String { "step_" + String(format: "%08d", step) }

  /// The step of a directory named step_<digits>, else nil.
  public static func step(ofDirectoryName name: String) -> Int? {
    guard name.hasPrefix("step_") else { return nil }
    let digits = name.dropFirst(5)
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
    return Int(digits)
  }

  /// step_* directories in `dir`, newest (highest step) first.
  public static func candidates(in dir: String) -> [(step: Int, path: String)] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.compactMap { n in step(ofDirectoryName: n).map { ($0, dir + "/" + n) } }.sorted { $0.step > $1.step }
  }

  /// The newest step_* directory in `dir` that holds a manifest (complete by construction), or
  /// nil. Checksums are not verified here (`latestVerified` does: what a resume takes).
  public static func latest(in dir: String) -> (step: Int, path: String)? {
    candidates(in: dir).first { FileManager.default.fileExists(atPath: $0.path + "/" + manifestFile) }
  }

  /// The run that wrote checkpoint `path` (its manifest's `run`), nil when unnamed or unreadable.
  public static func run(of path: String) -> String? {
    (try? CheckpointManifest.read(checkpoint: path))?.run
  }

  /// The checkpoints of run `run` in `dir` beyond its newest `keep` (keep ≤ 0: none): what a
  /// run prunes. Other runs' checkpoints, unnamed ones and incomplete ones are never listed.
  public static func prunable(in dir: String, run: String, keep: Int) -> [String] {
    guard keep > 0 else { return [] }
    return candidates(in: dir).filter { self.run(of: $0.path) == run }.dropFirst(keep).map(\.path)
  }

  /// Complete checkpoints in `dir` of other runs than `run` after `startStep` up to `lastStep`,
  /// except those in `ignoring` (found damaged): what a branch resumed at `startStep` would
  /// overwrite or interleave with.
  public static func laterCheckpointsOfOtherRuns(in dir: String, run: String, after startStep: Int, through lastStep: Int,
                                                 ignoring: Set<String> = []) -> [(step: Int, path: String)] {
    candidates(in: dir).filter { c in
      c.step > startStep && c.step <= lastStep && !ignoring.contains(c.path)
        && FileManager.default.fileExists(atPath: c.path + "/" + manifestFile) && self.run(of: c.path) != run
    }
  }

  /// Whether `path` names one checkpoint (holds a manifest, or is named step_*) rather than a
  /// directory of them.
  public static func isCheckpoint(_ path: String) -> Bool {
    FileManager.default.fileExists(atPath: path + "/" + manifestFile) || step(ofDirectoryName: lastComponent(path)) != nil
  }

  /// The directory holding checkpoint `path` (a step_* directory): where a resumed run keeps
  /// writing checkpoints unless --checkpoint-dir says otherwise.
  public static func directory(holding path: String) -> String {
    let parent = (path as NSString).deletingLastPathComponent
    return parent.isEmpty ? "." : parent
  }

  /// The directory a run writes its checkpoints to, from its --checkpoint-dir and --resume
  /// values: the explicit directory, else the one --resume reads from (the parent of a named
  /// checkpoint, or the directory of checkpoints itself), else `defaultDirectory`.
  public static func writeDirectory(checkpointDir: String?, resume: String?) -> String {
    if let checkpointDir { return checkpointDir }
    if let resume { return isCheckpoint(resume) ? directory(holding: resume) : resume }
    return defaultDirectory
  }

  /// The last path component of `path`, trailing slashes ignored.
  public static func lastComponent(_ path: String) -> String {
    var p = path
    while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
    return p.split(separator: "/").last.map(String.init) ?? p
  }
}

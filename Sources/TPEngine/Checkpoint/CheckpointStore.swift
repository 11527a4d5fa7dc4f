// Checkpoint directories: DIR/step_<8 digits>/{model.bin, state.bin, manifest.json}.
//
// Saving is collective: world rank 0 creates DIR/.tmp-step_<n>/ and sizes both files; every rank
// of DP replica 0 pwrites its own slices (parameters into model.bin, AdamW m and v into state.bin)
// and fsyncs; rank 0 checksums the files, writes manifest.json, fsyncs, renames the directory into
// place and fsyncs DIR. A crash at any moment leaves earlier checkpoints intact: a directory named
// step_* is complete by construction, and its manifest lets a reader prove it.

import CheckpointLayout
import Foundation
import Glibc
import TPComm

/// A checkpoint that passed every check.
public struct ValidCheckpoint: Sendable {
  /// The step_* directory.
  public var path: String
  public var manifest: CheckpointManifest
  public var state: TrainingStateHeader
  public var modelPath: String { path + "/" + Checkpoints.modelFile }
  public var statePath: String { path + "/" + Checkpoints.stateFile }
}

/// Validation, discovery, writing and pruning of checkpoint directories (named and laid out by
/// `Checkpoints`).
public enum CheckpointStore {
  static let modelFile = Checkpoints.modelFile
  static let stateFile = Checkpoints.stateFile
  static let manifestFile = Checkpoints.manifestFile

  // MARK: Validation

  /// Proves the checkpoint at `path` (a step_* directory) complete and intact: the manifest
  /// parses, every file has its recorded size and checksum, and the headers agree with it.
  public static func validate(_ path: String) throws -> ValidCheckpoint {
    let m: CheckpointManifest
    do { m = try CheckpointManifest.read(checkpoint: path) } catch { throw EngineError("\(error)") }
    do { try Checkpoints.verifyFiles(of: m, at: path) } catch { throw EngineError("\(error)") }
    let modelConfig = try Checkpoint.readConfig(path: path + "/" + modelFile)
    let state = try TrainingStateHeader.read(path: path + "/" + stateFile)
    if modelConfig != m.config.model {
      throw EngineError("\(modelFile) and \(manifestFile) disagree about the model's dimensions (damaged)")
    }
    if state.step != m.step {
      throw EngineError("\(stateFile) says step \(state.step), \(manifestFile) step \(m.step) (damaged)")
    }
    if state.run != m.config {
      throw EngineError("\(stateFile) and \(manifestFile) disagree about \(Self.differences(state.run, m.config).joined(separator: ", ")) (damaged)")
    }
    return ValidCheckpoint(path: path, manifest: m, state: state)
  }

  /// The fields in which two run configurations differ, by name ("the model shape", "dataTokens").
  static func differences(_ a: RunConfiguration, _ b: RunConfiguration) -> [String] {
    var out: [String] = a.shape != b.shape ? ["the model shape"] : []
    for (x, y) in zip(Mirror(reflecting: a.settings).children, Mirror(reflecting: b.settings).children)
    where "\(x.value)" != "\(y.value)" {
      out.append(x.label ?? "a setting")
    }
    return out.isEmpty ? ["the run's settings"] : out
  }

  /// The checkpoint to resume from. `path` is either a checkpoint directory (holding
  /// manifest.json: used as named, no fallback) or a directory of step_* checkpoints (the newest
  /// valid one; each newer invalid one is passed to `skipped` with its reason).
  public static func resolve(_ path: String, skipped: (String, String) -> Void) throws -> ValidCheckpoint {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
      throw EngineError("--resume \(path): no such directory; give a --checkpoint-dir or one of its step_* checkpoints")
    }
    guard isDir.boolValue else {
      throw EngineError("--resume \(path) is a file, not a checkpoint directory; use --init-from for an llm.c model file")
    }
    if Checkpoints.isCheckpoint(path) {
      do { return try validate(path) } catch let e as EngineError {
        throw EngineError("checkpoint \(path) is unusable: \(e.message)")
      }
    }
    let all = Checkpoints.candidates(in: path)
    if all.isEmpty {
      throw EngineError("--resume \(path) holds no checkpoints (no step_* directories)")
    }
    var reasons: [String] = []
    for c in all {
      do { return try validate(c.path) } catch let e as EngineError {
        skipped(c.path, e.message)
        reasons.append("\(Checkpoints.lastComponent(c.path)): \(e.message)")
      }
    }
    throw EngineError("--resume \(path) holds no valid checkpoint (\(reasons.joined(separator: "; ")))")
  }

  // MARK: Writing

  /// Writes a checkpoint of `model` and its optimizer state for `header.step` into `dir`, keeps
  /// the newest `keep` checkpoints, and returns the new directory's path. Collective over
  /// `world`; ranks of DP replica 0 write their slices. Throws the same error on every rank.
  public static func save(model: GPT, header: TrainingStateHeader, reason: String, dir: String, keep: Int,
                          lineage: CheckpointLineage, world: Communicator, dpRank: Int) throws -> String {
    let name = Checkpoints.directoryName(step: header.step)
    let final = dir + "/" + name
    let tmp = dir + "/.tmp-" + name
    let modelBytes = checkpointHeaderBytes + 4 * model.config.parameterCount

    // 1. rank 0: fresh temporary directory with both files at their final sizes
    var setupError = ""
    if world.rank == 0 {
      setupError = prepare(dir: dir, tmp: tmp, model: model, header: header, modelBytes: modelBytes)
    }
    try agree(world, setupError)

    // 2. every rank of replica 0: its slices of the weights; the ranks holding optimizer state
    // (replica 0, or under the distributed optimizer every replica its block): their slices
    // of m, v, at the same global offsets, so state.bin does not depend on the partition
    var failed = false
    let writesModel = dpRank == 0
    let writesState = dpRank == 0 || model.parallel.distributedOptimizer
    if writesModel || writesState {
      let mf = writesModel ? open(tmp + "/" + modelFile, O_WRONLY) : -1
      let sf = writesState ? open(tmp + "/" + stateFile, O_WRONLY) : -1
      let base = trainingStateHeaderBytes
      let (range, first) = (model.partition.range, model.partition.block.lowerBound)
      failed = (writesModel && (mf < 0 || !model.writeSlices(fd: mf, from: model.paramsMemory, fileBase: checkpointHeaderBytes) || fsync(mf) != 0))
        || (writesState && (sf < 0
          || !model.writeSlices(fd: sf, from: model.adamM, fileBase: base, range: range, bufferBase: first)
          || !model.writeSlices(fd: sf, from: model.adamV, fileBase: base + 4 * model.config.parameterCount, range: range, bufferBase: first)
          || fsync(sf) != 0))
      if mf >= 0 { close(mf) }
      if sf >= 0 { close(sf) }
    }
    var anyFailed = failed ? 1.0 : 0.0
    world.allReduce(&anyFailed, count: 1, .max)
    if anyFailed != 0 {
      if world.rank == 0 { removeTree(tmp) }
      throw EngineError.agreed("writing checkpoint \(tmp) failed (disk full or I/O error); earlier checkpoints are untouched")
    }

    // 3. rank 0: manifest, rename into place, prune
    var finishError = ""
    if world.rank == 0 {
      finishError = finish(tmp: tmp, final: final, dir: dir, header: header, reason: reason, keep: keep, lineage: lineage)
    }
    try agree(world, finishError)
    return final
  }

  /// Broadcasts rank 0's error (empty = none) and throws it on every rank.
  static func agree(_ world: Communicator, _ error: String) throws {
    let bytes = Array(error.utf8.prefix(511))
    let all = world.allGatherBytes(bytes, length: 512)
    let first = all[0].prefix { $0 != 0 }
    if !first.isEmpty { throw EngineError.agreed(String(decoding: first, as: UTF8.self)) }
  }

  static func prepare(dir: String, tmp: String, model: GPT, header: TrainingStateHeader, modelBytes: Int) -> String {
    if mkdir(dir, 0o755) != 0 && errno != EEXIST {
      return "cannot create checkpoint directory \(dir): \(String(cString: strerror(errno)))"
    }
    // Leftovers of writes that were killed (any step): never complete, never read.
    for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(".tmp-step_") {
      removeTree(dir + "/" + name)
    }
    if mkdir(tmp, 0o755) != 0 {
      return "cannot create \(tmp): \(String(cString: strerror(errno))); check --checkpoint-dir is writable"
    }
    let encoded: [UInt8]
    do { encoded = try header.encoded() } catch let e as EngineError { return e.message } catch { return "\(error)" }
    let files: [(String, [UInt8], Int)] = [
      (modelFile, Checkpoint.header(model.config).withUnsafeBytes { Array($0) }, modelBytes),
      (stateFile, encoded, header.fileBytes),
    ]
    for (name, head, size) in files {
      let fd = open(tmp + "/" + name, O_CREAT | O_TRUNC | O_WRONLY, 0o644)
      if fd < 0 { return "cannot create \(tmp)/\(name): \(String(cString: strerror(errno)))" }
      let ok = head.withUnsafeBytes { pwriteFully(fd, $0.baseAddress!, head.count, 0) } && ftruncate(fd, off_t(size)) == 0
      close(fd)
      if !ok { return "cannot write \(tmp)/\(name) (disk full or I/O error)" }
    }
    return ""
  }

  static func finish(tmp: String, final: String, dir: String, header: TrainingStateHeader, reason: String, keep: Int,
                     lineage: CheckpointLineage) -> String {
    do {
      var files: [CheckpointManifest.File] = []
      for name in [modelFile, stateFile] {
        let (bytes, sum) = try FNV1a64.file(tmp + "/" + name)
        files.append(.init(name: name, bytes: bytes, checksum: FNV1a64.hex(sum)))
      }
      let manifest = CheckpointManifest(step: header.step, tp: header.tp, dp: header.dp, reason: reason,
                                        created: ISO8601DateFormatter().string(from: Date()), config: header.run,
                                        optimizer: ReadableOptimizer(header.run), files: files, lineage: lineage)
      let encoder = JSONEncoder.sorted
      encoder.outputFormatting.insert(.prettyPrinted)
      let json = try encoder.encode(manifest)
      let fd = open(tmp + "/" + manifestFile, O_CREAT | O_TRUNC | O_WRONLY, 0o644)
      if fd < 0 { return "cannot create \(tmp)/\(manifestFile): \(String(cString: strerror(errno)))" }
      let ok = json.withUnsafeBytes { pwriteFully(fd, $0.baseAddress!, json.count, 0) } && fsync(fd) == 0
      close(fd)
      if !ok { return "cannot write \(tmp)/\(manifestFile) (disk full or I/O error)" }
      syncDirectory(of: tmp + "/" + manifestFile)
      // A checkpoint of the same step already there of this run (e.g. a request right after a
      // periodic save) is replaced: both hold the same state. Another branch's is not.
      if FileManager.default.fileExists(atPath: final) {
        if let other = Checkpoints.run(of: final), other != lineage.run, lineage.parent != nil {
          removeTree(tmp)
          return "\(final) belongs to run \(other), another branch of this run's history; not overwriting it (give a new --checkpoint-dir)"
        }
        removeTree(final)
      }
      if rename(tmp, final) != 0 { return "cannot rename \(tmp) to \(final): \(String(cString: strerror(errno)))" }
      syncDirectory(of: final)
      prune(dir: dir, keep: keep, run: lineage.run)
      return ""
    } catch let e as EngineError {
      return e.message
    } catch {
      return "\(error)"
    }
  }

  /// Removes all but the newest `keep` checkpoints of run `run` (keep ≤ 0 keeps all); other
  /// runs' checkpoints (the one this run resumed from among them) are never removed.
  static func prune(dir: String, keep: Int, run: String) {
    for path in Checkpoints.prunable(in: dir, run: run, keep: keep) { removeTree(path) }
  }

  /// Removes a checkpoint directory and its files (one level deep, as written here).
  static func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
  }
}

extension GPT {
  /// Loads this rank's slices of the AdamW moments (of its optimizer partition) from a
  /// state.bin written at any TP size, with or without the distributed optimizer.
  public func loadOptimizerState(path: String) throws {
    let fd = open(path, O_RDONLY)
    if fd < 0 { throw EngineError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let base = trainingStateHeaderBytes
    let (range, first) = (partition.range, partition.block.lowerBound)
    if let bad = readSlices(fd: fd, into: adamM, fileBase: base, range: range, bufferBase: first)
      ?? readSlices(fd: fd, into: adamV, fileBase: base + 4 * config.parameterCount, range: range, bufferBase: first) {
      throw EngineError("\(path) could not be read at tensor \(bad): truncated or unreadable")
    }
  }
}

// tptrain: tensor-parallel GPT-2 training over MPI.
//
//   mpirun -np 2 tptrain --model small --data data/shakespeare.txt --batch 8 --seq 256 --steps 100 --tp 2
//   mpirun -np 4 tptrain --model tiny --tp 2 --dp 2 --steps 50 --save model.bin
//   mpirun -np 1 tptrain --init-from model.bin --steps 10 --log run.jsonl
//   mpirun -np 4 tptrain --model tiny --tp 4 --steps 100 --checkpoint-dir ck --checkpoint-every 20
//   mpirun -np 2 tptrain --tp 2 --steps 100 --checkpoint-dir ck --resume ck

import ArgumentParser
import Foundation
import JobSchema
import TPComm
import TPEngine
import Telemetry

struct TPTrain: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tptrain",
    abstract: "Train a GPT-2 with Megatron-style tensor parallelism (and data parallelism) over MPI.",
    discussion: """
      Start one process per rank with mpirun; world size = tp × dp, TP ranks
      contiguous.
        mpirun -np 2 tptrain --model small --batch 8 --seq 256 --steps 200 --tp 2
        mpirun -np 4 tptrain --model tiny --tp 2 --dp 2 --steps 50 --save m.bin
      As root add --allow-run-as-root to mpirun; with more ranks than cores add
      --oversubscribe.
      Checkpoints and exact resume (at any tp; see docs/CHECKPOINTS.md):
        mpirun -np 4 tptrain --model tiny --tp 4 --steps 100 \\
               --checkpoint-dir ck --checkpoint-every 20
        mpirun -np 2 tptrain --tp 2 --steps 100 --checkpoint-dir ck --resume ck
      SIGTERM or SIGINT (to mpirun or any rank) writes a checkpoint at the next
      step boundary and exits 0; give mpirun --mca odls_base_sigkill_timeout 30
      for checkpoints that take over 1 s.
      """)

  @Option(help: "Model preset: tiny, small or gpt2-124m (default small unless --init-from or explicit sizes).")
  var model: String?
  @Option(name: .customLong("init-from"), help: "Start from an llm.c GPT-2 checkpoint.")
  var initFrom: String?
  @Option(help: "Number of transformer layers.") var layers: Int?
  @Option(help: "Number of attention heads.") var heads: Int?
  @Option(help: "Embedding channels.") var channels: Int?
  @Option(help: "Vocabulary size.") var vocab: Int?
  @Option(name: .customLong("max-seq"), help: "Maximum sequence length.") var maxSeq: Int?

  @Option(help: "Training data: an llm.c token file (.bin) or a text file (byte tokens). Default: the bundled Shakespeare corpus.")
  var data: String?
  @Option(name: [.customShort("b"), .long], help: "Batch size per DP replica (default 8).") var batch: Int?
  @Option(name: [.customShort("t"), .long], help: "Sequence length (default 64).") var seq: Int?
  @Option(help: "Total training steps, counted from step 0 also when resuming (default 20).") var steps: Int?
  @Option(help: "Tensor-parallel size t (default: world size / dp).") var tp: Int?
  @Option(help: "Data-parallel size d (default: world size / tp).") var dp: Int?

  @Option(help: "Peak learning rate (default 3e-4).") var lr: Float?
  @Option(help: "AdamW beta1 (default 0.9).") var beta1: Float?
  @Option(help: "AdamW beta2 (default 0.999).") var beta2: Float?
  @Option(help: "AdamW epsilon (default 1e-8).") var eps: Float?
  @Option(name: .customLong("weight-decay"), help: "AdamW weight decay (default 0).") var weightDecay: Float?
  @Option(name: .customLong("grad-clip"), help: "Clip the global gradient norm (0 = off, the default).") var gradClip: Float?
  @Option(name: .customLong("lr-schedule"), help: "constant (default) or cosine.") var lrSchedule: String?
  @Option(help: "Linear warmup steps (default 0).") var warmup: Int?
  @Option(name: .customLong("lr-min-frac"), help: "Cosine floor as a fraction of the peak lr (default 0.1).") var lrMinFrac: Float?
  @Option(help: "Seed for a new model's initialisation (default 1337).") var seed: UInt64?

  @Option(help: "Write the final model here (llm.c format).") var save: String?
  @Option(help: "Write one JSON object per step here.") var log: String?
  @Option(name: .customLong("checkpoint-dir"), help: "Directory of checkpoints, periodic, requested and on SIGTERM/SIGINT (default: the --resume directory, else ./checkpoints).")
  var checkpointDir: String?
  @Option(name: .customLong("checkpoint-every"), help: "Write a checkpoint every K steps and at the end (0 = only on request or signal).")
  var checkpointEvery: Int = 0
  @Option(name: .customLong("keep-checkpoints"), help: "Keep the newest N checkpoints (0 = all).") var keepCheckpoints: Int = 3
  @Option(help: "Resume from a checkpoint directory: the newest valid step_* in it, or a named step_* directory. Model and training settings come from the checkpoint; --tp may differ (re-shards).")
  var resume: String?
  @Option(help: "Telemetry job name (shared-memory segment).") var job: String?
  @Flag(name: .customLong("no-telemetry"), help: "Do not publish telemetry.") var noTelemetry = false
  @Option(name: .customLong("shard-stats-every"), help: "Publish per-shard weight/gradient norms and update ratios every N steps (0 = never).")
  var shardStatsEvery: Int = 10
  @Option(help: "Threads per rank, for OpenBLAS and the engine's worker pool (default: physical cores on the node / ranks on the node).") var threads: Int?
  @Flag(help: "Do not print a line per step.") var quiet = false
  @Option(name: .customLong("dump-grads"), help: .hidden) var dumpGrads: String?

  @Flag(name: .customLong("measure-peak"), help: .hidden) var measurePeak = false

  func run() throws {
    if measurePeak {
      // benchmark helper: the single-core sgemm peak MFU is measured against
      let (peak, median) = BLASTuning.measureSingleCorePeak()
      print(String(format: "BENCH sgemm_peak_1core %.2f GFLOP/s", peak))
      // the same series' median call: well below the peak when the host is busy
      print(String(format: "BENCH sgemm_median_1core %.2f GFLOP/s", median))
      print("BENCH blas_core \(BLASTuning.coreName) name")
      return
    }
    do { try MPIRuntime.initialize() } catch {
      throw ValidationError("MPI failed to start (\(error)); run under mpirun")
    }
    let world = Communicator.world()
    StopSignal.install()
    var trainer: Trainer? = nil
    var setupError: String? = nil
    do {
      trainer = try makeTrainer(world: world)
    } catch let e as EngineError {
      setupError = e.message
    } catch {
      setupError = "\(error)"
    }
    // Every rank learns whether any rank failed, so none is left waiting in a collective.
    var failed = setupError == nil ? 0.0 : Double(world.rank + 1)
    var firstFailed = setupError == nil ? Double(world.size + 1) : Double(world.rank)
    world.allReduce(&failed, count: 1, .max)
    world.allReduce(&firstFailed, count: 1, .min)
    if failed != 0 {
      if let msg = setupError, Int(firstFailed) == world.rank { printError("tptrain: error: \(msg)") }
      MPIRuntime.finalize()
      Foundation.exit(1)
    }
    guard let trainer else { return }
    do {
      try trainer.run()
    } catch {
      printError("tptrain: error (rank \(world.rank)): \(error)")
      trainer.observer.stateChanged(.failed)
      trainer.observer.event(.error("\(error)"))
      MPIRuntime.abort(1)
    }
    if world.rank == 0, case .signal(let sig) = trainer.stopReason {
      let saved = trainer.lastCheckpointPath.map { "checkpoint \($0)" } ?? "no checkpoint"
      printError("tptrain: \(StopSignal.name(sig)) received: stopped at step \(trainer.step) after \(saved); resume with --resume \(trainer.options.checkpointDir)")
    }
    if AllocationProbe.isActive {
      print("tptrain: rank \(world.rank): \(trainer.stepAllocations) heap allocations inside steps after the first")
    }
    if world.rank == 0, !quiet {
      print(String(format: "done: %d steps, final loss %.6f", trainer.step, trainer.lastLoss))
    }
    MPIRuntime.finalize()
  }

  /// A checkpoint chosen by --resume: its directory and training state.
  struct ResumePoint {
    var path: String
    var state: TrainingStateHeader
    var run: RunConfiguration { state.run }
  }

  /// Collective: world rank 0 finds and verifies the checkpoint (checksums included), every
  /// rank learns its path and reads its training-state header. Nil without --resume.
  func resolveResume(world: Communicator) throws -> ResumePoint? {
    guard let path = resume else { return nil }
    var chosen = ""
    var failure: String? = nil
    var skipped: [String] = []
    if world.rank == 0 {
      do {
        chosen = try CheckpointStore.resolve(path) { dir, why in skipped.append("tptrain: warning: checkpoint \(dir) is unusable (\(why)); trying the previous one") }.path
        if chosen.utf8.count >= 4096 { failure = "checkpoint path \(chosen) is too long" }
      } catch let e as EngineError {
        failure = e.message
      } catch {
        failure = "\(error)"
      }
    }
    let all = world.allGatherBytes(failure == nil ? Array(chosen.utf8) : [], length: 4096)
    if let failure { throw EngineError(failure) }
    let name = String(decoding: all[0].prefix { $0 != 0 }, as: UTF8.self)
    if name.isEmpty { throw EngineError("--resume \(path): rank 0 found no usable checkpoint") }
    for line in skipped { printError(line) }
    let state = try TrainingStateHeader.read(path: name + "/state.bin")
    if world.rank == 0 && !quiet {
      print("tptrain: resuming from \(name) at step \(state.step) (saved at tp \(state.tp) × dp \(state.dp))")
    }
    return ResumePoint(path: name, state: state)
  }

  /// Training settings: explicit flags, else the resumed checkpoint's, else the defaults.
  struct Settings {
    var batch: Int
    var seq: Int
    var steps: Int
    var optimizer = AdamWConfig()
    var schedule = LRSchedule()
    var seed: UInt64
  }

  func resolveSettings(resumed: ResumePoint?) throws -> Settings {
    let saved = resumed?.run
    var clashes: [String] = []
    func pick<T: Equatable>(_ flag: String, _ explicit: T?, _ fromCheckpoint: T?, _ fallback: T) -> T {
      if let e = explicit, let c = fromCheckpoint, e != c { clashes.append("\(flag) \(e) vs \(c)") }
      return explicit ?? fromCheckpoint ?? fallback
    }
    let savedOptimizer = saved?.optimizer, savedSchedule = saved?.lrSchedule
    var s = Settings(batch: pick("--batch", batch, saved?.batch, 8), seq: pick("--seq", seq, saved?.seq, 64),
                     steps: steps ?? saved?.totalSteps ?? 20, seed: pick("--seed", seed, saved?.seed, 1337))
    s.optimizer.learningRate = pick("--lr", lr, savedOptimizer?.learningRate, 3e-4)
    s.optimizer.beta1 = pick("--beta1", beta1, savedOptimizer?.beta1, 0.9)
    s.optimizer.beta2 = pick("--beta2", beta2, savedOptimizer?.beta2, 0.999)
    s.optimizer.eps = pick("--eps", eps, savedOptimizer?.eps, 1e-8)
    s.optimizer.weightDecay = pick("--weight-decay", weightDecay, savedOptimizer?.weightDecay, 0)
    s.optimizer.gradClip = pick("--grad-clip", gradClip, savedOptimizer?.gradClip, 0)
    let scheduleName = pick("--lr-schedule", lrSchedule, saved?.schedule, "constant")
    guard let kind = LRSchedule.Kind(rawValue: scheduleName) else {
      throw EngineError("unknown --lr-schedule '\(scheduleName)': use constant or cosine")
    }
    s.schedule.kind = kind
    s.schedule.warmupSteps = pick("--warmup", warmup, savedSchedule?.warmupSteps, 0)
    s.schedule.minFraction = pick("--lr-min-frac", lrMinFrac, savedSchedule?.minFraction, 0.1)
    if let r = resumed {
      if !clashes.isEmpty {
        throw EngineError("checkpoint \(r.path) was saved with other settings (\(clashes.joined(separator: ", "))): drop those flags to resume exactly, or start a new run")
      }
      if s.steps < r.state.step {
        throw EngineError("--steps \(s.steps) is before the checkpoint's step \(r.state.step) (\(r.path)): give --steps ≥ \(r.state.step)")
      }
    }
    return s
  }

  func resolveConfig(resumed: ResumePoint?) throws -> GPTConfig {
    let explicit = layers != nil || heads != nil || channels != nil || vocab != nil || maxSeq != nil
    if let r = resumed, initFrom != nil {
      throw EngineError("give either --resume or --init-from, not both (--resume \(r.path) restores the model and optimizer)")
    }
    if let r = resumed, let name = model, let preset = try? GPTConfig.preset(name), preset != r.run.model {
      throw EngineError("checkpoint \(r.path) holds \(describe(r.run.model)), not the --model \(name) preset: drop --model to resume it")
    }
    if initFrom != nil || resumed != nil {
      let path = resumed?.path ?? initFrom ?? ""
      if resumed == nil, model != nil { throw EngineError("give either --model or --init-from, not both") }
      let c = try resumed.map { $0.run.model } ?? Checkpoint.readConfig(path: path)
      var clashes: [String] = []
      if let l = layers, l != c.numLayers { clashes.append("--layers \(l) vs \(c.numLayers)") }
      if let h = heads, h != c.numHeads { clashes.append("--heads \(h) vs \(c.numHeads)") }
      if let ch = channels, ch != c.channels { clashes.append("--channels \(ch) vs \(c.channels)") }
      if let v = vocab, v != c.vocabSize { clashes.append("--vocab \(v) vs \(c.vocabSize)") }
      if let t = maxSeq, t != c.maxSeqLen { clashes.append("--max-seq \(t) vs \(c.maxSeqLen)") }
      if !clashes.isEmpty {
        throw EngineError("checkpoint \(path) contradicts the flags (\(clashes.joined(separator: ", "))): drop those flags or use a matching checkpoint")
      }
      return c
    }
    var c = try GPTConfig.preset(model ?? (explicit ? "small" : "small"))
    if let l = layers { c.numLayers = l }
    if let h = heads { c.numHeads = h }
    if let ch = channels { c.channels = ch }
    if let v = vocab { c.vocabSize = v; c.paddedVocabSize = GPTConfig.paddedVocab(for: v) }
    if let t = maxSeq { c.maxSeqLen = t }
    try c.validate()
    return c
  }

  func makeTrainer(world: Communicator) throws -> Trainer {
    // First, while every rank is sure to get here: the collective choice of checkpoint.
    let resumed = try resolveResume(world: world)
    let grid = try ParallelLayout(worldSize: world.size, worldRank: world.rank, tp: tp, dp: dp)
    let config = try resolveConfig(resumed: resumed)
    try grid.validate(config)
    let settings = try resolveSettings(resumed: resumed)
    let (batch, seq, steps) = (settings.batch, settings.seq, settings.steps)
    if batch < 1 || seq < 1 || steps < 0 {
      throw EngineError("--batch, --seq must be ≥ 1 and --steps ≥ 0 (got \(batch), \(seq), \(steps))")
    }
    if seq > config.maxSeqLen {
      throw EngineError("--seq \(seq) is larger than the model's max-seq \(config.maxSeqLen): lower --seq or use a model with --max-seq ≥ \(seq)")
    }
    if let threads, threads < 1 {
      throw EngineError("--threads must be ≥ 1 (got \(threads)); leave it out to use the rank's share of the cores")
    }
    if checkpointEvery < 0 || keepCheckpoints < 0 {
      throw EngineError("--checkpoint-every and --keep-checkpoints must be ≥ 0 (got \(checkpointEvery), \(keepCheckpoints))")
    }
    let savedData = resumed.map { $0.run.dataPath }.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
    let dataPath = try data ?? savedData ?? bundledCorpus()
    let stream = try TokenStream(path: dataPath)
    try stream.validate(vocab: config.vocabSize)
    if let r = resumed, stream.count != r.run.dataTokens {
      throw EngineError("data \(dataPath) has \(stream.count) tokens but checkpoint \(r.path) was trained on \(r.run.dataPath) with \(r.run.dataTokens): pass the same --data")
    }
    let loader = try DataLoader(stream: stream, batch: batch, seq: seq, dp: grid.dp, dpRank: grid.dpRank)
    for (flag, path) in [("--save", save), ("--log", log)] {
      if let path, !FileManager.default.isWritableFile(atPath: (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent) {
        throw EngineError("\(flag) \(path): directory does not exist or is not writable")
      }
    }
    if let dir = checkpointDir, checkpointEvery > 0 {
      // Checked now so a periodic checkpoint cannot fail for want of a directory mid-run.
      var isDir: ObjCBool = false
      let exists = FileManager.default.fileExists(atPath: dir, isDirectory: &isDir)
      let parent = (dir as NSString).deletingLastPathComponent.isEmpty ? "." : (dir as NSString).deletingLastPathComponent
      if exists ? !(isDir.boolValue && FileManager.default.isWritableFile(atPath: dir)) : !FileManager.default.isWritableFile(atPath: parent) {
        throw EngineError("--checkpoint-dir \(dir): not a writable directory, and cannot be created in \(parent)")
      }
    }

    let local = try LocalShape(config: config, tp: grid.tp, tpRank: grid.tpRank)
    let tpGroup = try world.split(color: grid.dpRank, key: grid.tpRank)
    let dpGroup = try world.split(color: grid.tpRank, key: grid.dpRank)
    let node = try world.splitShared()
    let placement = CPUPlacement.apply(localRank: node.rank, localSize: node.size, requestedThreads: threads)
    if let note = placement.note, world.rank == 0, !quiet { printError("tptrain: " + note) }
    setBLASThreads(placement.threads)

    let gpt = try GPT(config: config, local: local, batch: batch, seq: seq, tpGroup: tpGroup, ranksOnNode: node.size,
                      threads: placement.threads)
    if let r = resumed {
      try gpt.load(path: r.path + "/model.bin")
      try gpt.loadOptimizerState(path: r.path + "/state.bin")
    } else if let path = initFrom {
      try gpt.load(path: path)
    } else {
      gpt.initializeGPT2(seed: settings.seed)
    }

    var options = TrainingOptions()
    options.steps = steps
    options.optimizer = settings.optimizer
    options.schedule = settings.schedule
    options.seed = settings.seed
    options.startStep = resumed?.state.step ?? 0
    options.checkpointEvery = checkpointEvery
    options.keepCheckpoints = keepCheckpoints
    options.logPath = log
    options.savePath = save
    options.checkpointDir = checkpointDir ?? resumed.map { resumeDirectory(of: $0.path) } ?? "checkpoints"
    options.dumpGradsPrefix = dumpGrads
    options.printSteps = !quiet
    options.shardStatsEvery = max(0, shardStatsEvery)

    let observer: TrainingObserver = try makeObserver(world: world, node: node, grid: grid, config: config, gpt: gpt, settings: settings)
    if world.rank == 0 && !quiet {
      print("tptrain: \(describe(config)) | tp \(grid.tp) × dp \(grid.dp) | B \(batch) T \(seq) | \(config.parameterCount) params | data \(dataPath) (\(stream.count) tokens) | BLAS \(BLASTuning.coreName) × \(placement.threads) thread\(placement.threads == 1 ? "" : "s")/rank")
    }
    return try Trainer(model: gpt, loader: loader, world: world, tpGroup: tpGroup, dpGroup: dpGroup,
                       grid: grid, options: options, observer: observer)
  }

  func describe(_ c: GPTConfig) -> String {
    "GPT-2 L\(c.numLayers) H\(c.numHeads) C\(c.channels) V\(c.vocabSize)(\(c.paddedVocabSize)) maxT\(c.maxSeqLen)"
  }

  func makeObserver(world: Communicator, node: Communicator, grid: ParallelLayout, config: GPTConfig, gpt: GPT, settings: Settings) throws -> TrainingObserver {
    if noTelemetry { return NullObserver() }
    // Every rank must use rank 0's name (a default name holds rank 0's time and pid).
    let proposed = job ?? defaultJobName()
    let name = String(decoding: world.allGatherBytes(Array(proposed.utf8), length: 128)[0].prefix { $0 != 0 }, as: UTF8.self)
    let shape = ModelShape(config, batch: settings.batch, seq: settings.seq)
    let observer = try TelemetryObserver(
      jobName: name, worldRank: world.rank, worldSize: world.size, localRank: node.rank, tp: grid.tp, dp: grid.dp,
      model: shape, preset: model ?? (initFrom != nil ? "checkpoint" : "custom"), shards: gpt.layout, totalSteps: settings.steps, barrier: { node.barrier() })
    if world.rank == 0 && !quiet { print("tptrain: telemetry job \(name) (watch with: tptop attach \(name))") }
    return observer
  }

  func defaultJobName() -> String {
    var t = time(nil)
    var tmv = tm()
    localtime_r(&t, &tmv)
    return String(format: "tp-%04d%02d%02d-%02d%02d%02d-%d", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
                  Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec), Int(getpid()))
  }
}

/// The directory holding checkpoint `path` (a step_* directory): where a resumed run keeps
/// writing checkpoints unless --checkpoint-dir says otherwise.
func resumeDirectory(of path: String) -> String {
  let parent = (path as NSString).deletingLastPathComponent
  return parent.isEmpty ? "." : parent
}

/// The bundled demo corpus: next to the package the binary was built in, or in ./data.
func bundledCorpus() throws -> String {
  let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
  var candidates: [String] = []
  if let env = ProcessInfo.processInfo.environment["TPTOP_DATA"] { candidates.append(env) }
  candidates += [
    exe.appendingPathComponent("../../data/shakespeare.txt").path,
    exe.appendingPathComponent("../../../data/shakespeare.txt").path,
    exe.appendingPathComponent("../share/tptop/shakespeare.txt").path,
    "data/shakespeare.txt",
  ]
  for c in candidates where FileManager.default.fileExists(atPath: c) { return c }
  throw EngineError("bundled corpus data/shakespeare.txt not found: pass --data FILE or set TPTOP_DATA")
}

func printError(_ line: String) {
  FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
}

BLASTuning.reexecWithBetterCoreIfNeeded()
TPTrain.main()

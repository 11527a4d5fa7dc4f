// tptrain: tensor-parallel GPT-2 training over MPI.
//
//   mpirun -np 2 tptrain --model small --data data/shakespeare.txt --batch 8 --seq 256 --steps 100 --tp 2
//   mpirun -np 4 tptrain --model tiny --tp 2 --dp 2 --steps 50 --save model.bin
//   mpirun -np 1 tptrain --init-from model.bin --steps 10 --log run.jsonl

import ArgumentParser
import Foundation
import TPComm
import TPEngine

struct TPTrain: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tptrain",
    abstract: "Train a GPT-2 with Megatron-style tensor parallelism (and data parallelism) over MPI.",
    discussion: """
      Start one process per rank with mpirun; world size = tp × dp, TP ranks contiguous.
        mpirun -np 2 tptrain --model small --batch 8 --seq 256 --steps 200 --tp 2
        mpirun -np 4 tptrain --model tiny --tp 2 --dp 2 --steps 50 --save model.bin
      As root add --allow-run-as-root to mpirun; with more ranks than cores add --oversubscribe.
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
  @Option(name: [.customShort("b"), .long], help: "Batch size per DP replica.") var batch: Int = 8
  @Option(name: [.customShort("t"), .long], help: "Sequence length.") var seq: Int = 64
  @Option(help: "Training steps.") var steps: Int = 20
  @Option(help: "Tensor-parallel size t (default: world size / dp).") var tp: Int?
  @Option(help: "Data-parallel size d (default: world size / tp).") var dp: Int?

  @Option(help: "Peak learning rate.") var lr: Float = 3e-4
  @Option(help: "AdamW beta1.") var beta1: Float = 0.9
  @Option(help: "AdamW beta2.") var beta2: Float = 0.999
  @Option(help: "AdamW epsilon.") var eps: Float = 1e-8
  @Option(name: .customLong("weight-decay"), help: "AdamW weight decay.") var weightDecay: Float = 0
  @Option(name: .customLong("grad-clip"), help: "Clip the global gradient norm (0 = off).") var gradClip: Float = 0
  @Option(name: .customLong("lr-schedule"), help: "constant or cosine.") var lrSchedule: String = "constant"
  @Option(help: "Linear warmup steps.") var warmup: Int = 0
  @Option(name: .customLong("lr-min-frac"), help: "Cosine floor as a fraction of the peak lr.") var lrMinFrac: Float = 0.1
  @Option(help: "Seed for a new model's initialisation.") var seed: UInt64 = 1337

  @Option(help: "Write the final model here (llm.c format).") var save: String?
  @Option(help: "Write one JSON object per step here.") var log: String?
  @Option(name: .customLong("checkpoint-dir"), help: "Directory for on-demand checkpoints.") var checkpointDir: String = "checkpoints"
  @Option(help: "Telemetry job name (shared-memory segment).") var job: String?
  @Flag(name: .customLong("no-telemetry"), help: "Do not publish telemetry.") var noTelemetry = false
  @Option(help: "OpenBLAS threads per rank (default: cores on the node / ranks on the node).") var threads: Int?
  @Flag(help: "Do not print a line per step.") var quiet = false
  @Option(name: .customLong("dump-grads"), help: .hidden) var dumpGrads: String?

  func run() throws {
    do { try MPIRuntime.initialize() } catch {
      throw ValidationError("MPI failed to start (\(error)); run under mpirun")
    }
    let world = Communicator.world()
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
    if world.rank == 0, !quiet {
      print(String(format: "done: %d steps, final loss %.6f", trainer.step, trainer.lastLoss))
    }
    MPIRuntime.finalize()
  }

  func resolveConfig() throws -> GPTConfig {
    let explicit = layers != nil || heads != nil || channels != nil || vocab != nil || maxSeq != nil
    if let path = initFrom {
      if model != nil { throw EngineError("give either --model or --init-from, not both") }
      let c = try Checkpoint.readConfig(path: path)
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
    let grid = try ParallelLayout(worldSize: world.size, worldRank: world.rank, tp: tp, dp: dp)
    let config = try resolveConfig()
    try grid.validate(config)
    if batch < 1 || seq < 1 || steps < 0 {
      throw EngineError("--batch, --seq must be ≥ 1 and --steps ≥ 0 (got \(batch), \(seq), \(steps))")
    }
    if seq > config.maxSeqLen {
      throw EngineError("--seq \(seq) is larger than the model's max-seq \(config.maxSeqLen): lower --seq or use a model with --max-seq ≥ \(seq)")
    }
    guard let schedule = LRSchedule.Kind(rawValue: lrSchedule) else {
      throw EngineError("unknown --lr-schedule '\(lrSchedule)': use constant or cosine")
    }
    let dataPath = try data ?? bundledCorpus()
    let stream = try TokenStream(path: dataPath)
    try stream.validate(vocab: config.vocabSize)
    let loader = try DataLoader(stream: stream, batch: batch, seq: seq, dp: grid.dp, dpRank: grid.dpRank)
    for (flag, path) in [("--save", save), ("--log", log)] {
      if let path, !FileManager.default.isWritableFile(atPath: (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent) {
        throw EngineError("\(flag) \(path): directory does not exist or is not writable")
      }
    }

    let local = try LocalShape(config: config, tp: grid.tp, tpRank: grid.tpRank)
    let tpGroup = try world.split(color: grid.dpRank, key: grid.tpRank)
    let dpGroup = try world.split(color: grid.tpRank, key: grid.dpRank)
    let node = try world.splitShared()
    let cores = ProcessInfo.processInfo.activeProcessorCount
    setBLASThreads(threads ?? max(1, cores / node.size))

    let gpt = GPT(config: config, local: local, batch: batch, seq: seq, tpGroup: tpGroup)
    if let path = initFrom { try gpt.load(path: path) } else { gpt.initializeGPT2(seed: seed) }

    var options = TrainingOptions()
    options.steps = steps
    options.optimizer.learningRate = lr
    options.optimizer.beta1 = beta1
    options.optimizer.beta2 = beta2
    options.optimizer.eps = eps
    options.optimizer.weightDecay = weightDecay
    options.optimizer.gradClip = gradClip
    options.schedule.kind = schedule
    options.schedule.warmupSteps = warmup
    options.schedule.minFraction = lrMinFrac
    options.logPath = log
    options.savePath = save
    options.checkpointDir = checkpointDir
    options.dumpGradsPrefix = dumpGrads
    options.printSteps = !quiet

    let observer: TrainingObserver = try makeObserver(world: world, node: node, grid: grid, config: config, gpt: gpt)
    if world.rank == 0 && !quiet {
      print("tptrain: \(describe(config)) | tp \(grid.tp) × dp \(grid.dp) | B \(batch) T \(seq) | \(config.parameterCount) params | data \(dataPath) (\(stream.count) tokens)")
    }
    return try Trainer(model: gpt, loader: loader, world: world, tpGroup: tpGroup, dpGroup: dpGroup,
                       grid: grid, options: options, observer: observer)
  }

  func describe(_ c: GPTConfig) -> String {
    "GPT-2 L\(c.numLayers) H\(c.numHeads) C\(c.channels) V\(c.vocabSize)(\(c.paddedVocabSize)) maxT\(c.maxSeqLen)"
  }

  func makeObserver(world: Communicator, node: Communicator, grid: ParallelLayout, config: GPTConfig, gpt: GPT) throws -> TrainingObserver {
    return NullObserver()
  }
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

TPTrain.main()

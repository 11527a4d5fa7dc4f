// tptrain's flags and every rule that turns them into a run: model shape, training settings,
// checkpoint directory, resume and --init-from conflicts, and the checks that must pass before
// any rank allocates. Plain values in, plain values out: no MPI, so the rules are unit-tested
// without mpirun. The collective steps (choosing the checkpoint, splitting communicators) stay in
// tptrain.

import ArgumentParser
import CheckpointLayout
import Foundation
import JobSchema
import TPComm
import TPEngine

/// tptrain's command-line flags and the rules that read them.
public struct RunSetup: ParsableArguments {
  @Option(help: "Model preset: tiny, small or gpt2-124m (default small unless --init-from or explicit sizes).")
  public var model: String?
  @Option(name: .customLong(TrainingFlag.initFrom.rawValue), help: "Start from an llm.c GPT-2 checkpoint.")
  public var initFrom: String?
  @Option(help: "Number of transformer layers.") public var layers: Int?
  @Option(help: "Number of attention heads.") public var heads: Int?
  @Option(help: "Embedding channels.") public var channels: Int?
  @Option(help: "Vocabulary size.") public var vocab: Int?
  @Option(name: .customLong("max-seq"), help: "Maximum sequence length.") public var maxSeq: Int?

  @Option(help: "Training data: an llm.c token file (.bin) or a text file (byte tokens). Default: the bundled Shakespeare corpus.")
  public var data: String?
  @Option(name: [.customShort("b"), .long], help: "Batch size per DP replica (default 8).") public var batch: Int?
  @Option(name: [.customShort("t"), .long], help: "Sequence length (default 64).") public var seq: Int?
  @Option(help: "Total training steps, counted from step 0 also when resuming (default 20).") public var steps: Int?
  @Option(help: "Tensor-parallel size t (default: world size / dp).") public var tp: Int?
  @Option(help: "Data-parallel size d (default: world size / tp).") public var dp: Int?

  @Option(help: "Peak learning rate (default 3e-4).") public var lr: Float?
  @Option(help: "AdamW beta1 (default 0.9).") public var beta1: Float?
  @Option(help: "AdamW beta2 (default 0.999).") public var beta2: Float?
  @Option(help: "AdamW epsilon (default 1e-8).") public var eps: Float?
  @Option(name: .customLong("weight-decay"), help: "AdamW weight decay (default 0).") public var weightDecay: Float?
  @Option(name: .customLong("grad-clip"), help: "Clip the global gradient norm (0 = off, the default).") public var gradClip: Float?
  @Option(name: .customLong("lr-schedule"), help: "constant (default) or cosine.") public var lrSchedule: String?
  @Option(help: "Linear warmup steps (default 0).") public var warmup: Int?
  @Option(name: .customLong("lr-min-frac"), help: "Cosine floor as a fraction of the peak lr (default 0.1).") public var lrMinFrac: Float?
  @Option(help: "Seed for a new model's initialisation (default 1337).") public var seed: UInt64?

  @Option(help: "Write the final model here (llm.c format).") public var save: String?
  @Option(help: "Write one JSON object per step here.") public var log: String?
  @Option(name: .customLong(TrainingFlag.checkpointDir.rawValue), help: "Directory of checkpoints, periodic, requested and on SIGTERM/SIGINT (default: the --resume directory, else ./checkpoints).")
  public var checkpointDir: String?
  @Option(name: .customLong("checkpoint-every"), help: "Write a checkpoint every K steps and at the end (0 = only on request or signal).")
  public var checkpointEvery: Int = 0
  @Option(name: .customLong("keep-checkpoints"), help: "Keep the newest N checkpoints (0 = all).") public var keepCheckpoints: Int = 3
  @Option(name: .customLong(TrainingFlag.resume.rawValue), help: "Resume from a checkpoint directory: the newest valid step_* in it, or a named step_* directory. Model and training settings come from the checkpoint; --tp may differ (re-shards).")
  public var resume: String?
  @Option(name: .customLong(TrainingFlag.job.rawValue), help: "Telemetry job name (shared-memory segment).") public var job: String?
  @Flag(name: .customLong(TrainingFlag.noTelemetry.rawValue), help: "Do not publish telemetry.") public var noTelemetry = false
  @Option(name: .customLong("simulate-nodes"), help: "Testing aid: telemetry treats the world as K nodes of contiguous ranks, each with its own segment (node n ≥ 1 in namespace node<n>, see tptop --namespace); K must divide the world size.")
  public var simulateNodes: Int?
  @Option(name: .customLong("shard-stats-every"), help: "Publish per-shard weight/gradient norms and update ratios every N steps (0 = never).")
  public var shardStatsEvery: Int = 10
  @Option(help: "Threads per rank, for OpenBLAS and the engine's worker pool (default: physical cores on the node / ranks on the node).") public var threads: Int?
  @Flag(help: "Do not print a line per step.") public var quiet = false
  @Option(name: .customLong("dump-grads"), help: .hidden) public var dumpGrads: String?

  @Option(name: .customLong("on-nonfinite"), help: "When the loss or gradient norm is NaN or infinite: stop (exit non-zero, no checkpoint of that state) or skip-step (discard that step's update and count it).")
  public var onNonFinite: NonFinitePolicy = .stop
  /// Test-only fault injection: poisons the gradient of this step (counted from 1) with a NaN.
  @Option(name: .customLong("fault-nonfinite-at"), help: .hidden) public var faultNonFiniteAt: Int?

  @Flag(name: .customLong("measure-peak"), help: .hidden) public var measurePeak = false
  @Option(help: "How data collectives run: ring (the hand-written ring over non-blocking send/receive pairs; the default, faster on one node, see BENCHMARKS.md) or mpi (OpenMPI's own, which choose algorithms by size and topology, e.g. hierarchical across nodes).")
  public var collectives: CollectiveAlgorithm = .ring
  @Flag(name: .customLong("sequence-parallel"), help: "Sequence parallelism: outside the tensor-parallel blocks (LayerNorms, residual adds, biases, position embedding) each TP rank keeps only its 1/tp of the batch × seq token rows (batch × seq must be divisible by tp).")
  public var sequenceParallel = false
  @Option(help: "Activation recomputation: none (the default: keep every activation), selective (recompute the attention probabilities in the backward) or full (keep each layer's input; rerun the layer's forward before its backward).")
  public var recompute: String?

  @Flag(name: .customLong("distributed-optimizer"), help: "Partition AdamW's state over the DP ranks (ZeRO stage 1): gradients reduce-scattered, each DP rank updates its 1/dp of the parameters, which are then all-gathered. A no-op at dp 1.")
  public var distributedOptimizer = false
  @Flag(name: .customLong("memory-report"), help: "Allocate the model, print every rank's bytes of parameters, gradients, optimizer state, activations and other next to docs/MEMORY.md's formula, and exit without training.")
  public var memoryReport = false

  @Flag(name: .customLong("overlap-grad-reduce"), help: "Reduce the data-parallel gradients in buckets while the backward runs (bitwise the same result).")
  public var overlapGradReduce = false
  @Option(name: .customLong("bucket-mib"), help: "Gradient bucket size in MiB for --overlap-grad-reduce, > 0 and ≤ 65536 (default 4).")
  public var bucketMiB: Double?
  @Flag(name: .customLong("overlap-tp"), help: "Pipeline the tensor-parallel collectives with the GEMMs of the parallel linears in row chunks (with --sequence-parallel: the all-gathers and reduce-scatters; bitwise the same result).")
  public var overlapTP = false
  @Option(name: .customLong("tp-chunks"), help: "Row chunks per tensor-parallel collective for --overlap-tp, 1–256, each at least 64 rows (default 4).")
  public var tpChunks: Int?

  /// Row chunks of a row-parallel GEMM under --overlap-tp (BENCHMARKS.md).
  public static let defaultTPChunks = 4
  /// Most row chunks --tp-chunks takes: chunks are at least 64 rows, so 256 already needs
  /// B·T ≥ 16 384 rows per rank.
  public static let maxTPChunks = 256
  /// Largest --bucket-mib: 64 GiB, past any gradient buffer a rank of this engine holds (one
  /// bucket then takes every gradient).
  public static let maxBucketMiB = 65536.0
  /// Chunks per row-parallel GEMM: 1 (no pipelining) unless --overlap-tp.
  public var tensorParallelChunks: Int { overlapTP ? (tpChunks ?? Self.defaultTPChunks) : 1 }
  /// Benchmark helper: at the end, every rank that forwards or receives records of other nodes
  /// prints the time it spent doing so per step (`BENCH forwarding_…`).
  @Flag(name: .customLong("forwarding-stats"), help: .hidden) public var forwardingStats = false

  /// Flags as the parser leaves them with nothing given.
  public init() {}

  // MARK: Activation memory

  /// Sequence parallelism and recomputation for a run of `settings` over `tp` ranks; throws one
  /// line for an unknown --recompute and for token rows that do not split over tp.
  public func activationOptions(settings: Settings, tp: Int) throws -> ActivationOptions {
    guard let mode = Recompute(name: recompute ?? "none") else {
      throw EngineError("unknown --recompute '\(recompute ?? "")': use none, selective or full")
    }
    let rows = settings.batch * settings.seq
    if sequenceParallel && rows % tp != 0 {
      throw EngineError("cannot split the token rows over tp=\(tp) for --sequence-parallel: batch × seq = \(settings.batch) × \(settings.seq) = \(rows) is not divisible by \(tp); pick --batch or --seq so that it is, or drop --sequence-parallel")
    }
    return ActivationOptions(sequenceParallel: sequenceParallel, recompute: mode)
  }

  // MARK: Model shape

  /// The model: the resumed checkpoint's, the --init-from file's, or a preset with explicit
  /// sizes applied. Throws when flags contradict the checkpoint or each other.
  public func modelConfig(resumed: ResumePoint?) throws -> GPTConfig {
    if let r = resumed, initFrom != nil {
      throw EngineError("give either --resume or --init-from, not both (--resume \(r.path) restores the model and optimizer)")
    }
    if let r = resumed, let name = model, let preset = try? GPTConfig.preset(name), preset != r.run.model {
      throw EngineError("checkpoint \(r.path) holds \(Self.describe(r.run.model)), not the --model \(name) preset: drop --model to resume it")
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
    var c = try GPTConfig.preset(model ?? "small")
    if let l = layers { c.numLayers = l }
    if let h = heads { c.numHeads = h }
    if let ch = channels { c.channels = ch }
    if let v = vocab { c.vocabSize = v; c.paddedVocabSize = GPTConfig.paddedVocab(for: v) }
    if let t = maxSeq { c.maxSeqLen = t }
    try c.validate()
    return c
  }

  // MARK: Training settings

  /// Training settings: explicit flags, else the resumed checkpoint's, else the defaults.
  public struct Settings: Sendable {
    public var batch: Int
    public var seq: Int
    public var steps: Int
    public var optimizer = AdamWConfig()
    public var schedule = LRSchedule()
    public var seed: UInt64
  }

  /// The settings of this run. Throws when a flag differs from the resumed checkpoint's value
  /// (the continuation would not be exact), for --steps before the checkpoint's step, for an
  /// unknown schedule, and for sizes `config` cannot run.
  public func settings(resumed: ResumePoint?, config: GPTConfig) throws -> Settings {
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
    if s.batch < 1 || s.seq < 1 || s.steps < 0 {
      throw EngineError("--batch, --seq must be ≥ 1 and --steps ≥ 0 (got \(s.batch), \(s.seq), \(s.steps))")
    }
    if s.seq > config.maxSeqLen {
      throw EngineError("--seq \(s.seq) is larger than the model's max-seq \(config.maxSeqLen): lower --seq or use a model with --max-seq ≥ \(s.seq)")
    }
    return s
  }

  /// Checks `--simulate-nodes` against the world size: the nodes are equal groups of ranks.
  public func validateSimulatedNodes(worldSize: Int) throws {
    if let k = simulateNodes, k > 1, worldSize % k != 0 {
      throw EngineError("--simulate-nodes \(k) must divide the world size \(worldSize) (nodes are equal groups of contiguous ranks)")
    }
  }

  /// Most threads per rank, as a multiple of the node's online cores.
  public static let maxThreadsPerCore = 4

  /// Cores online on this node (at least 1).
  public static func onlineCores() -> Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

  /// Checks the flags that need no model: thread count and checkpoint cadence.
  public func validateCounts() throws {
    if let threads, threads < 1 {
      throw EngineError("--threads must be ≥ 1 (got \(threads)); leave it out to use the rank's share of the cores")
    }
    let cores = Self.onlineCores()
    if let threads, threads > Self.maxThreadsPerCore * cores {
      throw EngineError("--threads \(threads) is more than \(Self.maxThreadsPerCore) × the \(cores) cores of this node "
        + "(\(Self.maxThreadsPerCore * cores)): threads beyond the cores only wait for one, and each costs a stack; "
        + "give --threads ≤ \(Self.maxThreadsPerCore * cores) or leave it out to use the rank's share of the cores")
    }
    if checkpointEvery < 0 || keepCheckpoints < 0 {
      throw EngineError("--checkpoint-every and --keep-checkpoints must be ≥ 0 (got \(checkpointEvery), \(keepCheckpoints))")
    }
  }

  // MARK: Numeric flags

  /// A numeric flag's valid values, as the error message words them.
  enum Range {
    /// A finite number > 0.
    case positive
    /// A finite number ≥ 0.
    case nonNegative
    /// A finite number in [0, 1).
    case fraction
    /// A finite number in [0, 1].
    case closedFraction
    /// An integer ≥ the bound.
    case atLeast(Int)
    /// A finite number > 0 and ≤ the bound.
    case positiveAtMost(Double)
    /// An integer in the closed range.
    case between(Int, Int)

    /// "a finite number > 0", "≥ 1", ...
    var words: String {
      switch self {
      case .positive: return "a finite number > 0"
      case .nonNegative: return "a finite number ≥ 0"
      case .fraction: return "a finite number ≥ 0 and < 1"
      case .closedFraction: return "a finite number between 0 and 1"
      case .atLeast(let n): return "≥ \(n)"
      case .positiveAtMost(let m): return "a finite number > 0 and ≤ \(String(format: "%g", m))"
      case .between(let lo, let hi): return "between \(lo) and \(hi)"
      }
    }

    func admits(_ v: Double) -> Bool {
      guard v.isFinite else { return false }
      switch self {
      case .positive: return v > 0
      case .nonNegative: return v >= 0
      case .fraction: return v >= 0 && v < 1
      case .closedFraction: return v >= 0 && v <= 1
      case .atLeast(let n): return v >= Double(n)
      case .positiveAtMost(let m): return v > 0 && v <= m
      case .between(let lo, let hi): return v >= Double(lo) && v <= Double(hi)
      }
    }
  }

  /// Every numeric flag given on the command line, with its rule: one table, so a new flag is
  /// checked by adding one row.
  var numericFlags: [(flag: String, value: Double?, text: String?, range: Range)] {
    func int(_ f: String, _ v: Int?, _ r: Range) -> (String, Double?, String?, Range) { (f, v.map(Double.init), v.map { "\($0)" }, r) }
    func real(_ f: String, _ v: Float?, _ r: Range) -> (String, Double?, String?, Range) { (f, v.map(Double.init), v.map { String(format: "%g", Double($0)) }, r) }
    return [
      int("--layers", layers, .atLeast(1)), int("--heads", heads, .atLeast(1)), int("--channels", channels, .atLeast(1)),
      int("--vocab", vocab, .atLeast(1)), int("--max-seq", maxSeq, .atLeast(1)),
      int("--batch", batch, .atLeast(1)), int("--seq", seq, .atLeast(1)), int("--steps", steps, .atLeast(0)),
      int("--tp", tp, .atLeast(1)), int("--dp", dp, .atLeast(1)),
      real("--lr", lr, .positive), real("--beta1", beta1, .fraction), real("--beta2", beta2, .fraction),
      real("--eps", eps, .positive), real("--weight-decay", weightDecay, .nonNegative),
      real("--grad-clip", gradClip, .nonNegative), int("--warmup", warmup, .atLeast(0)),
      real("--lr-min-frac", lrMinFrac, .closedFraction),
      int("--checkpoint-every", checkpointEvery, .atLeast(0)), int("--keep-checkpoints", keepCheckpoints, .atLeast(0)),
      int("--shard-stats-every", shardStatsEvery, .atLeast(0)), int("--threads", threads, .atLeast(1)),
      int("--fault-nonfinite-at", faultNonFiniteAt, .atLeast(1)), int("--simulate-nodes", simulateNodes, .atLeast(1)),
      (flag: "--bucket-mib", value: bucketMiB, text: bucketMiB.map { String(format: "%g", $0) },
       range: .positiveAtMost(Self.maxBucketMiB)),
      int("--tp-chunks", tpChunks, .between(1, Self.maxTPChunks)),
    ]
  }

  /// Checks every numeric flag against its valid range, before any MPI work: throws one line,
  /// e.g. "--lr must be a finite number > 0, not -1".
  public func validateNumbers() throws {
    for row in numericFlags {
      if let v = row.value, let text = row.text, !row.range.admits(v) {
        throw EngineError("\(row.flag) must be \(row.range.words), not \(text)")
      }
    }
  }

  /// `arguments` with every negative number that follows an option joined to it (`--steps -3`
  /// becomes `--steps=-3`, `-b -3` becomes `-b=-3`), so the parser reads it as the option's value rather than as an
  /// option of its own and the value reaches `validateNumbers`. tptrain takes no positional
  /// arguments, so a number after a flag that takes no value is an error either way.
  public static func joiningNegativeNumbers(_ arguments: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < arguments.count {
      let a = arguments[i]
      if a.hasPrefix("-"), a != "--", a.count >= 2, Double(a) == nil, !a.contains("="), i + 1 < arguments.count,
         arguments[i + 1].hasPrefix("-"), Double(arguments[i + 1]) != nil {
        out.append(a + "=" + arguments[i + 1])
        i += 2
        continue
      }
      out.append(a)
      i += 1
    }
    return out
  }

  // MARK: Files

  /// The training data: --data, else the resumed run's file when it still exists, else the
  /// bundled corpus.
  public func dataPath(resumed: ResumePoint?) throws -> String {
    let savedData = resumed.map { $0.run.dataPath }.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
    return try data ?? savedData ?? bundledCorpus()
  }

  /// Throws when a resumed run would read other data than it was trained on.
  public func checkData(path: String, tokens: Int, resumed: ResumePoint?) throws {
    if let r = resumed, tokens != r.run.dataTokens {
      throw EngineError("data \(path) has \(tokens) tokens but checkpoint \(r.path) was trained on \(r.run.dataPath) with \(r.run.dataTokens): pass the same --data")
    }
  }

  /// Throws when --save, --log or (with periodic checkpoints) --checkpoint-dir cannot be written,
  /// so the run fails now rather than after its steps.
  public func checkOutputs() throws {
    if let save {
      // a directory, FIFO or socket is refused; a link is followed; a device is written through
      let target = try ModelFileTarget(save)
      let directory = Self.parent(of: target.path)
      if !target.isDevice && !FileManager.default.isWritableFile(atPath: directory) {
        throw EngineError("--save \(save): directory \(directory) does not exist or is not writable")
      }
    }
    if let log {
      var isDir: ObjCBool = false
      if FileManager.default.fileExists(atPath: log, isDirectory: &isDir), isDir.boolValue {
        throw EngineError("--log \(log) is a directory: name a file, e.g. \(log.hasSuffix("/") ? log : log + "/")train.jsonl")
      }
      if !FileManager.default.isWritableFile(atPath: Self.parent(of: log)) {
        throw EngineError("--log \(log): directory does not exist or is not writable")
      }
    }
    if let dir = checkpointDir, checkpointEvery > 0 {
      // Checked now so a periodic checkpoint cannot fail for want of a directory mid-run.
      var isDir: ObjCBool = false
      let exists = FileManager.default.fileExists(atPath: dir, isDirectory: &isDir)
      let parent = Self.parent(of: dir)
      if exists ? !(isDir.boolValue && FileManager.default.isWritableFile(atPath: dir)) : !FileManager.default.isWritableFile(atPath: parent) {
        throw EngineError("--checkpoint-dir \(dir): not a writable directory, and cannot be created in \(parent)")
      }
    }
  }

  /// Refuses a resumed run whose checkpoint directory holds another run's checkpoints past the
  /// resumed step: a resumed run is a new branch, and would overwrite them or leave two
  /// histories in one directory (whose "latest" a later --resume or a supervised restart would
  /// take from the other branch). Checkpoints passed over as damaged do not count. Every rank
  /// checks, before any collective that could hang a rank that does not fail.
  public func checkBranch(resumed: ResumePoint?) throws {
    guard let resumed else { return }
    let dir = checkpointDirectory(resumed: resumed)
    // this run has written nothing yet: every checkpoint there is another run's
    let later = Checkpoints.laterCheckpointsOfOtherRuns(
      in: dir, run: "", after: resumed.state.step, through: Int.max, ignoring: Set(resumed.skipped))
    guard !later.isEmpty else { return }
    let names = later.reversed().map { Checkpoints.lastComponent($0.path) }
    let listed = names.prefix(3).joined(separator: ", ") + (names.count > 3 ? " and \(names.count - 3) more" : "")
    throw EngineError("--checkpoint-dir \(dir) already holds \(listed) of another run, past the resumed step \(resumed.state.step): "
      + "this run is a new branch and would overwrite \(names.count == 1 ? "it" : "them"); give it a directory of its own, "
      + "e.g. --checkpoint-dir \(dir)/branch-\(resumed.state.step)")
  }

  /// The directory checkpoints are written to: --checkpoint-dir, else the one holding the resumed
  /// checkpoint, else `Checkpoints.defaultDirectory`.
  public func checkpointDirectory(resumed: ResumePoint?) -> String {
    checkpointDir ?? resumed.map { Checkpoints.directory(holding: $0.path) } ?? Checkpoints.defaultDirectory
  }

  /// `path` made absolute against the working directory ("ck" → "/home/me/run/ck").
  static func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : URL(fileURLWithPath: path).standardizedFileURL.path
  }

  /// The trainer's options for `settings`, starting after the resumed checkpoint's step.
  public func trainingOptions(settings: Settings, resumed: ResumePoint?) -> TrainingOptions {
    var options = TrainingOptions()
    options.steps = settings.steps
    options.optimizer = settings.optimizer
    options.schedule = settings.schedule
    options.seed = settings.seed
    options.startStep = resumed?.state.step ?? 0
    options.checkpointEvery = checkpointEvery
    options.keepCheckpoints = keepCheckpoints
    options.lineage = CheckpointLineage.newRun(parent: resumed?.asParent)
    options.logPath = log
    options.savePath = save
    // absolute, so that the events, the dashboard's stop prompt and "resume with --resume DIR"
    // name the same directory from any working directory
    options.checkpointDir = Self.absolute(checkpointDirectory(resumed: resumed))
    options.dumpGradsPrefix = dumpGrads
    options.printSteps = !quiet
    options.shardStatsEvery = max(0, shardStatsEvery)
    options.onNonFinite = onNonFinite
    options.faultNonFiniteAtStep = faultNonFiniteAt
    return options
  }

  /// The run's parallel configuration on a `tp` × `dp` grid: every feature flag resolved once
  /// (on only where it does something); throws as `activationOptions` does.
  public func parallelConfig(settings: Settings, tp: Int, dp: Int) throws -> ParallelConfig {
    ParallelConfig(tp: tp, dp: dp, activations: try activationOptions(settings: settings, tp: tp),
                   distributedOptimizer: distributedOptimizer, overlapGradReduce: overlapGradReduce,
                   bucketBytes: bucketMiB.map { Int($0 * 1_048_576) } ?? ParallelConfig.defaultBucketBytes,
                   overlapTP: overlapTP, tpChunks: tensorParallelChunks)
  }

  /// Start-up notes, one line each, for flags that change nothing on this grid (printed once by
  /// rank 0): a feature with no other rank to work with, a setting of a feature that is off.
  public func noOpNotes(tp: Int, dp: Int) -> [String] {
    var notes: [String] = []
    if distributedOptimizer && dp == 1 {
      notes.append("--distributed-optimizer at dp 1 is a no-op: there is no other DP rank to share the optimizer state with")
    }
    if overlapGradReduce && dp == 1 {
      notes.append("--overlap-grad-reduce at dp 1 is a no-op: there is no data-parallel gradient reduction to overlap")
    }
    if overlapTP && tp == 1 {
      notes.append("--overlap-tp at tp 1 is a no-op: there is no tensor-parallel communication to overlap")
    }
    if bucketMiB != nil && !overlapGradReduce { notes.append("--bucket-mib has no effect without --overlap-grad-reduce") }
    if tpChunks != nil && !overlapTP { notes.append("--tp-chunks has no effect without --overlap-tp") }
    return notes
  }

  /// "GPT-2 L2 H4 C64 V256(256) maxT64".
  public static func describe(_ c: GPTConfig) -> String {
    "GPT-2 L\(c.numLayers) H\(c.numHeads) C\(c.channels) V\(c.vocabSize)(\(c.paddedVocabSize)) maxT\(c.maxSeqLen)"
  }

  /// The directory part of `path` ("." when it has none).
  static func parent(of path: String) -> String {
    let p = (path as NSString).deletingLastPathComponent
    return p.isEmpty ? "." : p
  }
}

/// A checkpoint chosen by --resume: its directory and training state.
public struct ResumePoint: Sendable {
  /// The step_* directory.
  public var path: String
  /// Its state.bin header.
  public var state: TrainingStateHeader
  /// Newer checkpoints of the same directory passed over as damaged.
  public var skipped: [String]
  /// The run configuration saved with it.
  public var run: RunConfiguration { state.run }
  /// Creates a resume point.
  public init(path: String, state: TrainingStateHeader, skipped: [String] = []) {
    self.path = path
    self.state = state
    self.skipped = skipped
  }

  /// The manifest's record of it, for the resumed run's lineage.
  public var asParent: ParentCheckpoint {
    ParentCheckpoint(run: Checkpoints.run(of: path), step: state.step, path: path)
  }
}

/// The bundled demo corpus: next to the package the binary was built in, or in ./data. The
/// binary's directory comes from /proc/self/exe, so a tptrain found through PATH finds it too.
public func bundledCorpus() throws -> String {
  let exe = executableDirectory()
  var candidates: [String] = []
  if let env = ProcessInfo.processInfo.environment["TPTOP_DATA"] { candidates.append(env) }
  candidates += [
    exe.appendingPathComponent("../../data/shakespeare.txt").path,
    exe.appendingPathComponent("../../../data/shakespeare.txt").path,
    exe.appendingPathComponent("../share/tptop/data/shakespeare.txt").path,  // make install
    "data/shakespeare.txt",
  ]
  for c in candidates where FileManager.default.fileExists(atPath: c) { return c }
  throw EngineError("bundled corpus data/shakespeare.txt not found: pass --data FILE or set TPTOP_DATA")
}

/// The directory of the running executable: /proc/self/exe's target (argv[0] can be a bare name
/// found through PATH), else argv[0] with symlinks resolved.
func executableDirectory() -> URL {
  if let real = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
    return URL(fileURLWithPath: real).deletingLastPathComponent()
  }
  return URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
}

extension NonFinitePolicy: ExpressibleByArgument {}
extension CollectiveAlgorithm: ExpressibleByArgument {}

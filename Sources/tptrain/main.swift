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
import TPKernels
import CheckpointLayout
import TPEngine
import Telemetry
import TrainingSetup

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
      Less activation memory per rank (any tp; same model, see README):
        mpirun -np 2 tptrain --tp 2 --sequence-parallel --recompute selective
      SIGTERM or SIGINT (to mpirun or any rank) writes a checkpoint at the next
      step boundary and exits 0; give mpirun --mca odls_base_sigkill_timeout 30
      for checkpoints that take over 1 s.
      """,
    version: "tptrain \(ProjectVersion.string)")

  @OptionGroup var setup: RunSetup
  @OptionGroup var record: RecordOptions

  func run() throws {
    if setup.measurePeak {
      // benchmark helper: the single-core sgemm peak MFU is measured against
      let (peak, median) = BLASTuning.measureSingleCorePeak()
      print(String(format: "BENCH sgemm_peak_1core %.2f GFLOP/s", peak))
      // the same series' median call: well below the peak when the host is busy
      print(String(format: "BENCH sgemm_median_1core %.2f GFLOP/s", median))
      print("BENCH blas_core \(BLASTuning.coreName) name")
      return
    }
    // Flag values that can never run are refused before any MPI work, by every rank alike (only
    // the first prints).
    do { try setup.validateNumbers() } catch {
      if isWorldRankZero { printError("tptrain: error: \(error)") } else { usleep(otherRanksErrorDelayMicros) }
      throw ExitCode(2)
    }
    do { try MPIRuntime.initialize() } catch {
      throw ValidationError("MPI failed to start (\(error)); run under mpirun")
    }
    let world = Communicator.world()
    StopSignal.install()
    var trainer: Trainer? = nil
    var setupError: String? = nil
    var setupExit = TrainingExit.setup
    do {
      trainer = try makeTrainer(world: world)
    } catch let e as EngineError {
      setupError = e.message
    } catch TelemetryError.alreadyExists(let name) {
      setupError = "\(TelemetryError.alreadyExists(name))"
      setupExit = .jobNameTaken
    } catch {
      setupError = "\(error)"
    }
    // Every rank learns whether any rank failed, so none is left waiting in a collective, and
    // every rank exits with the same status (the supervisor decides by it).
    var failed = setupError == nil ? 0.0 : Double(world.rank + 1)
    var firstFailed = setupError == nil ? Double(world.size + 1) : Double(world.rank)
    var status = setupError == nil ? 0.0 : Double(setupExit.rawValue)
    world.allReduce(&failed, count: 1, .max)
    world.allReduce(&firstFailed, count: 1, .min)
    world.allReduce(&status, count: 1, .max)
    if failed != 0 {
      if let msg = setupError, Int(firstFailed) == world.rank { printError("tptrain: error: \(msg)") }
      MPIRuntime.finalize()
      Foundation.exit(Int32(status))
    }
    guard let trainer else { return }
    if setup.memoryReport {
      reportMemory(trainer)
      MPIRuntime.finalize()
      return
    }
    do {
      try trainer.run()
    } catch let e as EngineError where e.collective {
      // every rank failed alike (a checkpoint or --save the ranks agreed could not be written):
      // one line, and a clean end on every rank
      if world.rank == 0 { printError("tptrain: error: \(e.message)") }
      trainer.observer.stateChanged(.failed)
      trainer.observer.event(.error(e.message))
      finishRecording(trainer.observer, state: .failed)
      MPIRuntime.finalize()
      Foundation.exit(TrainingExit.outputFailed.rawValue)
    } catch {
      printError("tptrain: error (rank \(world.rank)): \(error)")
      trainer.observer.stateChanged(.failed)
      trainer.observer.event(.error("\(error)"))
      finishRecording(trainer.observer, state: .failed)
      MPIRuntime.abort(1)
    }
    // the other nodes' last records and final states reach world rank 0's segment
    if let telemetry = trainer.observer as? TelemetryObserver {
      let spent = (telemetry.sender?.spentNs ?? 0) + (telemetry.receiver?.spentNs ?? 0)
      telemetry.finishForwarding()
      if setup.forwardingStats, telemetry.sender != nil || telemetry.receiver != nil {
        let steps = max(1, trainer.losses.count)
        print(String(format: "BENCH forwarding_rank%d_cpu_us_per_step %.2f us", world.rank, Double(spent) / 1e3 / Double(steps)))
      }
    }
    switch trainer.stopReason {
    case .nonFinite: finishRecording(trainer.observer, state: .failed)
    case .signal, .stopRequested: finishRecording(trainer.observer, state: .stopped)
    default: finishRecording(trainer.observer, state: .finished)
    }
    if case .nonFinite(let step, let loss, let norm) = trainer.stopReason {
      if world.rank == 0 {
        let saved = trainer.lastCheckpointPath.map { "the last checkpoint is \($0) (step \(trainer.lastCheckpointStep))" } ?? "no checkpoint was written"
        // name what was not finite: a finite loss with a NaN gradient norm is not a "non-finite loss"
        let what = loss.isFinite ? "non-finite gradient norm \(norm) (loss \(loss))"
          : norm.isFinite ? "non-finite loss \(loss) (gradient norm \(norm))" : "non-finite loss \(loss) / gradient norm \(norm)"
        printError("tptrain: error: \(what) at step \(step): stopped without checkpointing it; \(saved). Lower --lr, set --grad-clip, or pass --on-nonfinite skip-step")
      }
      MPIRuntime.finalize()
      Foundation.exit(TrainingExit.nonFinite.rawValue)
    }
    if world.rank == 0, case .signal(let sig) = trainer.stopReason {
      let saved = trainer.lastCheckpointPath.map { "checkpoint \($0)" } ?? "no checkpoint"
      printError("tptrain: \(StopSignal.name(sig)) received: stopped at step \(trainer.step) after \(saved); resume with --resume \(trainer.options.checkpointDir)")
    }
    if AllocationProbe.isActive {
      print("tptrain: rank \(world.rank): \(trainer.stepAllocations) heap allocations inside steps after the first")
    }
    if world.rank == 0, !setup.quiet {
      let skipped = setup.onNonFinite == .skipStep ? ", \(trainer.skippedSteps) skipped (non-finite)" : ""
      print(String(format: "done: %d steps, final loss %.6f", trainer.step, trainer.lastLoss) + skipped)
    }
    MPIRuntime.finalize()
    // the log missed lines: the run is not a success (the error was printed when it happened)
    if trainer.logWriteError != nil { Foundation.exit(TrainingExit.outputFailed.rawValue) }
  }

  /// Collective: world rank 0 finds and verifies the checkpoint (checksums included), every
  /// rank learns its path and reads its training-state header. Nil without --resume.
  func resolveResume(world: Communicator) throws -> ResumePoint? {
    guard let path = setup.resume else { return nil }
    var chosen = ""
    var failure: String? = nil
    var skipped: [String] = []
    var skippedPaths: [String] = []
    if world.rank == 0 {
      do {
        chosen = try CheckpointStore.resolve(path) { dir, why in
          skipped.append("tptrain: warning: checkpoint \(dir) is unusable (\(why)); trying the previous one")
          skippedPaths.append(dir)
        }.path
        if chosen.utf8.count >= 4096 { failure = "checkpoint path \(chosen) is too long" }
      } catch let e as EngineError {
        failure = e.message
      } catch {
        failure = "\(error)"
      }
    }
    // the chosen checkpoint, then the newer ones passed over as damaged, one per line
    let listed = ([chosen] + skippedPaths).joined(separator: "\n")
    let sent = listed.utf8.count < 4096 ? listed : chosen
    let all = world.allGatherBytes(failure == nil ? Array(sent.utf8) : [], length: 4096)
    if let failure { throw EngineError(failure) }
    let lines = String(decoding: all[0].prefix { $0 != 0 }, as: UTF8.self).split(separator: "\n").map(String.init)
    let name = lines.first ?? ""
    if name.isEmpty { throw EngineError("--resume \(path): rank 0 found no usable checkpoint") }
    for line in skipped { printError(line) }
    let state = try TrainingStateHeader.read(path: name + "/" + Checkpoints.stateFile)
    if world.rank == 0 && !setup.quiet {
      print("tptrain: resuming from \(name) at step \(state.step) (saved at tp \(state.tp) × dp \(state.dp))")
    }
    return ResumePoint(path: name, state: state, skipped: Array(lines.dropFirst()))
  }

  func makeTrainer(world: Communicator) throws -> Trainer {
    // First, while every rank is sure to get here: the collective choice of checkpoint.
    let resumed = try resolveResume(world: world)
    let grid = try ParallelLayout(worldSize: world.size, worldRank: world.rank, tp: setup.tp, dp: setup.dp)
    let config = try setup.modelConfig(resumed: resumed)
    try grid.validate(config)
    let settings = try setup.settings(resumed: resumed, config: config)
    let (batch, seq) = (settings.batch, settings.seq)
    let parallel = try setup.parallelConfig(settings: settings, tp: grid.tp, dp: grid.dp)
    let activations = parallel.activations
    try setup.validateCounts()
    try setup.validateSimulatedNodes(worldSize: world.size)
    let dataPath = try setup.dataPath(resumed: resumed)
    let stream = try TokenStream(path: dataPath)
    try stream.validate(vocab: config.vocabSize)
    try setup.checkData(path: dataPath, tokens: stream.count, resumed: resumed)
    let loader = try DataLoader(stream: stream, batch: batch, seq: seq, dp: grid.dp, dpRank: grid.dpRank)
    try setup.checkOutputs()
    try setup.checkBranch(resumed: resumed)

    let local = try LocalShape(config: config, tp: grid.tp, tpRank: grid.tpRank)
    let tpGroup = try world.split(color: grid.dpRank, key: grid.tpRank)
    let dpGroup = try world.split(color: grid.tpRank, key: grid.dpRank)
    for c in [world, tpGroup, dpGroup] { c.algorithm = setup.collectives }
    let node = try world.splitShared()
    let nodes = try NodeTopology(world: world, shared: node, simulate: setup.simulateNodes)
    let placement = CPUPlacement.apply(localRank: node.rank, localSize: node.size, requestedThreads: setup.threads)
    if let note = placement.note, world.rank == 0, !setup.quiet { printError("tptrain: " + note) }
    setBLASThreads(placement.threads)

    let gpt = try GPT(config: config, local: local, batch: batch, seq: seq, tpGroup: tpGroup, parallel: parallel,
                      dpRank: grid.dpRank, ranksOnNode: node.size, threads: placement.threads)
    if world.rank == 0 { for note in setup.noOpNotes(tp: grid.tp, dp: grid.dp) { printError("tptrain: note: " + note) } }
    if let r = resumed {
      try gpt.load(path: r.path + "/" + Checkpoints.modelFile)
      try gpt.loadOptimizerState(path: r.path + "/" + Checkpoints.stateFile)
    } else if let path = setup.initFrom {
      try gpt.load(path: path)
    } else {
      gpt.initializeGPT2(seed: settings.seed)
    }

    let options = setup.trainingOptions(settings: settings, resumed: resumed)

    let observer: TrainingObserver = try makeObserver(world: world, nodes: nodes, grid: grid, config: config, gpt: gpt, settings: settings,
                                                      checkpointDir: options.checkpointDir, resumed: resumed)
    if world.rank == 0 && !setup.quiet {
      print("tptrain: \(RunSetup.describe(config)) | tp \(grid.tp) × dp \(grid.dp) | B \(batch) T \(seq) | \(config.parameterCount) params | data \(dataPath) (\(stream.count) tokens) | BLAS \(BLASTuning.coreName) × \(placement.threads) thread\(placement.threads == 1 ? "" : "s")/rank" + (activations.sequenceParallel ? " | SP" : "") + (activations.recompute == .none ? "" : " | recompute=\(activations.recompute.name)")
            + (parallel.distributedOptimizer ? " | distopt ×\(parallel.optimizerShards)" : "")
            + (parallel.overlapTP ? " | overlap-tp ×\(gpt.tensorParallelPieces)"
               + (gpt.tensorParallelPieces != parallel.tpChunks
                  ? " (of \(parallel.tpChunks) asked: chunks are ≥ 64 of the \(batch * seq) rows)" : "") : "")
            + (parallel.gradientBucketBytes.map { " | overlap-grad \(String(format: "%g", Double($0) / 1_048_576)) MiB buckets" } ?? ""))
    }
    if let telemetry = observer as? TelemetryObserver {
      // ranks publish the collective they wait in, and beat while they wait
      telemetry.lastStep = options.startStep
      for c in [world, tpGroup, dpGroup] { c.waitObserver = telemetry }
    }
    let trainer = try Trainer(model: gpt, loader: loader, world: world, tpGroup: tpGroup, dpGroup: dpGroup,
                              grid: grid, options: options, observer: observer)
    if let telemetry = observer as? TelemetryObserver {
      // while paused only each node's local rank 0 ticks; the others sleep on the node's segment
      let isLeader = nodes.node.rank == 0
      let leaders = try world.split(color: isLeader ? 0 : 1, key: world.rank)
      leaders.waitObserver = telemetry
      trainer.pausedSleep = PausedSleep(leaders: leaders, isLeader: isLeader, node: telemetry)
    }
    return trainer
  }

  func makeObserver(world: Communicator, nodes: NodeTopology, grid: ParallelLayout, config: GPTConfig, gpt: GPT, settings: RunSetup.Settings,
                    checkpointDir: String, resumed: ResumePoint?) throws -> TrainingObserver {
    if setup.noTelemetry { return NullObserver() }
    // Every rank must use rank 0's name (a default name holds rank 0's time and pid).
    let proposed = setup.job ?? defaultJobName()
    let name = String(decoding: world.allGatherBytes(Array(proposed.utf8), length: 128)[0].prefix { $0 != 0 }, as: UTF8.self)
    let shape = ModelShape(config, batch: settings.batch, seq: settings.seq)
    // each node's local rank 0 creates its node's segment (a simulated node's in its namespace)
    let space = SegmentSpace(namespace: nodes.namespace)
    let node = nodes.node
    let observer = try TelemetryObserver(
      jobName: name, in: space, worldRank: world.rank, worldSize: world.size, localRank: node.rank, nodeIndex: nodes.index,
      tp: grid.tp, dp: grid.dp,
      model: shape, preset: setup.model ?? (setup.initFrom != nil ? "checkpoint" : "custom"), shards: gpt.layout,
      totalSteps: settings.steps, features: gpt.parallel.features.with(checkpointAtStop: setup.checkpointEvery > 0),
      slotCount: record.ringSlots, rankNodes: nodes.rankNodes,
      anyFailed: { failed in
        var flag = failed ? 1.0 : 0.0
        world.allReduce(&flag, count: 1, .max)
        return flag != 0
      })
    if nodes.count > 1 {
      // the other nodes' records go to world rank 0's segment (docs/TELEMETRY.md), on a
      // duplicate of the world that carries nothing else
      let forwarding = try world.duplicate(for: .telemetryForwarding)
      if world.rank == 0 {
        observer.receiver = try ForwardingReceiver(
          segment: observer.segment, remoteRanks: nodes.ranksByNode.dropFirst().flatMap { $0 }, world: forwarding)
      } else if nodes.index != 0 {
        observer.sender = ForwardingSender(writer: observer.writer, world: forwarding, relaySegment: node.rank == 0 ? observer.segment : nil)
      }
      observer.sender?.measuring = setup.forwardingStats
      observer.receiver?.measuring = setup.forwardingStats
    }
    if world.rank == 0 && !setup.quiet { print("tptrain: telemetry job \(name) (watch with: tptop attach \(name))") }
    if world.rank == 0 && !record.noRecord {
      observer.recorder = startRecording(job: name, in: space, description: observer.segment.info.description, options: record,
                                         resumedFrom: resumed.map { ($0.path, $0.state.step) },
                                         // where a stop's checkpoint goes, for a dashboard's stop prompt
                                         settings: settings.recorded.merging(
                                           observer.segment.info.description.features.checkpointAtStop ? ["checkpoint-dir": checkpointDir] : [:]) { _, b in b },
                                         quiet: setup.quiet)
      // this rank's training thread keeps what the recorder has not read from being overwritten
      observer.rescue = observer.recorder?.rescue
    }
    return observer
  }

  /// --memory-report: rank 0 prints every rank's bytes by category (measured: the buffers the
  /// engine allocated, and the resident set) and docs/MEMORY.md's formula for them. Collective.
  func reportMemory(_ trainer: Trainer) {
    let (model, grid, world) = (trainer.model, trainer.grid, trainer.world)
    let m = model.memory
    let rss = Int(trainer.residentBytes())
    let columns: [(String, Int)] = [("parameters", m.parameters), ("gradients", m.gradients), ("optimizer", m.optimizer),
                                    ("activations", m.activations), ("other", max(0, rss - m.total)), ("rss", rss)]
    let gathered = columns.map { world.allGather(Int64($0.1)) }
    guard world.rank == 0 else { return }
    let f = MemoryFormula.perRank(model.config, batch: model.B, seq: model.T, tp: grid.tp, dp: grid.dp,
                                  distributedOptimizer: model.parallel.distributedOptimizer, activations: model.activationOptions)
    func mib(_ b: Int64) -> String { String(format: "%.2f", Double(b) / 1048576) }
    print("memory: \(RunSetup.describe(model.config)) | tp \(grid.tp) × dp \(grid.dp) | B \(model.B) T \(model.T) | distributed optimizer \(model.parallel.distributedOptimizer ? "on" : "off") | bytes (MiB)")
    for r in 0..<world.size {
      print("memory rank=\(r) " + columns.indices.map { "\(columns[$0].0)=\(gathered[$0][r]) (\(mib(gathered[$0][r])))" }.joined(separator: " "))
    }
    let formula: [(String, Int)] = [("parameters", f.parameters), ("gradients", f.gradients), ("optimizer", f.optimizer), ("activations", f.activations)]
    print("memory formula " + formula.map { "\($0.0)=\($0.1) (\(mib(Int64($0.1))))" }.joined(separator: " "))
  }

  func defaultJobName() -> String {
    var t = time(nil)
    var tmv = tm()
    localtime_r(&t, &tmv)
    return String(format: "tp-%04d%02d%02d-%02d%02d%02d-%d", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
                  Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec), Int(getpid()))
  }
}


/// Whether this process is world rank 0 (or runs without mpirun), known before MPI starts.
let isWorldRankZero = (ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] ?? "0") == "0"

/// How long a rank other than 0 waits before exiting on a command-line error every rank found:
/// mpirun ends the job at the first rank that exits with an error, so rank 0 exits (and has
/// printed the one line) first.
let otherRanksErrorDelayMicros: UInt32 = 2_000_000

func printError(_ line: String) {
  FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
}

BLASTuning.reexecWithBetterCoreIfNeeded()
// A flag that does not parse does so on every rank alike: only world rank 0 prints the error,
// in one write (mpirun would interleave one copy per rank, and its own report, with pieces of
// it); the others wait a moment first, so the job ends at rank 0's exit, after it has spoken.
let parsed: TPTrain
do {
  parsed = try TPTrain.parse(RunSetup.joiningNegativeNumbers(Array(CommandLine.arguments.dropFirst())))
} catch {
  let code = TPTrain.exitCode(for: error)
  if !isWorldRankZero {
    if code != .success { usleep(otherRanksErrorDelayMicros) }
    exit(code.rawValue)
  }
  let message = TPTrain.fullMessage(for: error)
  if code == .success {
    print(message)
  } else {
    printError(message)
  }
  exit(code.rawValue)
}
do {
  let command = parsed
  try command.run()
} catch {
  TPTrain.exit(withError: error)
}

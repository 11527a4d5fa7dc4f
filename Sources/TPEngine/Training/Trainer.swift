// The training loop: data → forward → backward → DP gradient average → norm/clip → AdamW, with
// per-step measurements, and control decisions applied by every rank at the same step boundary.

import CheckpointLayout
import Foundation
import Glibc
import JobSchema
import TPComm
import TPKernels

public struct TrainingOptions: Sendable {
  public var steps: Int = 10
  public var optimizer = AdamWConfig()
  public var schedule = LRSchedule()
  /// JSON Lines log written by world rank 0 (one object per step).
  public var logPath: String? = nil
  /// Final model, llm.c format.
  public var savePath: String? = nil
  /// Directory of checkpoints (periodic, requested, on SIGTERM/SIGINT): `step_<n>/` inside it.
  public var checkpointDir: String = Checkpoints.defaultDirectory
  /// Save a checkpoint every this many steps, and at the end of the run (0 = only on request
  /// or signal).
  public var checkpointEvery: Int = 0
  /// Keep the newest N checkpoints in `checkpointDir` (0 = keep all).
  public var keepCheckpoints: Int = 3
  /// This run's id and the checkpoint it resumed from, recorded in every manifest it writes;
  /// it prunes only checkpoints of this id.
  public var lineage = CheckpointLineage.newRun(parent: nil)
  /// Steps already completed when this run starts (from a resumed checkpoint).
  public var startStep: Int = 0
  /// Seed the model was initialised with (recorded in checkpoints; no RNG runs after init).
  public var seed: UInt64 = 0
  /// Debug: after step 1's backward (and DP average), each rank writes its raw gradient shard to
  /// `<prefix>.rank<r>.bin`.
  public var dumpGradsPrefix: String? = nil
  /// Print one line per step on world rank 0.
  public var printSteps = true
  /// Publish per-shard weight/gradient norms and update ratios every N steps (0 = never).
  public var shardStatsEvery = 10
  /// What a step with a non-finite loss or gradient norm does.
  public var onNonFinite = NonFinitePolicy.stop
  /// Test-only fault injection: this step (counted from 1) gets a NaN in its gradient.
  public var faultNonFiniteAtStep: Int? = nil
  public init() {}
}

/// What the trainer does after a step whose loss or global gradient norm is NaN or infinite.
/// Both are global values, so every rank decides alike.
public enum NonFinitePolicy: String, Sendable, CaseIterable {
  /// End the run (non-zero exit) without checkpointing or saving the poisoned state.
  case stop
  /// Discard the step's update (parameters and AdamW moments untouched) and go on; the skips
  /// are counted.
  case skipStep = "skip-step"
}

/// Why `Trainer.run()` returned.
public enum StopReason: Sendable, Equatable {
  /// All `options.steps` steps ran.
  case completed
  /// A controller asked the job to stop.
  case stopRequested
  /// A rank received this signal (SIGTERM/SIGINT); a checkpoint was written first.
  case signal(Int32)
  /// Step `step` (counted from 1) had a non-finite loss or gradient norm under
  /// `NonFinitePolicy.stop`; nothing was checkpointed or saved after it.
  case nonFinite(step: Int, loss: Float, norm: Float)
}

/// Everything one rank needs to train.
public final class Trainer {
  public let model: GPT
  public let loader: DataLoader
  public let world: Communicator
  public let tpGroup: Communicator
  public let dpGroup: Communicator
  public let grid: ParallelLayout
  public var options: TrainingOptions
  public let observer: TrainingObserver
  /// Steps completed so far (the next step to run is `step`, from 0).
  public private(set) var step = 0
  public private(set) var lastLoss: Float = .nan
  /// Global losses of every step run, in order (filled outside the measured step).
  public private(set) var losses: [Float] = []
  /// Heap allocations made inside steps after the first (counted only under the test preload).
  public private(set) var stepAllocations = 0
  /// Why the last `run()` returned.
  public private(set) var stopReason: StopReason = .completed
  /// Path and step of the newest checkpoint this trainer wrote (or resumed from).
  public private(set) var lastCheckpointPath: String? = nil
  public private(set) var lastCheckpointStep = -1
  /// Wall time of the newest checkpoint write, seconds.
  public private(set) var lastCheckpointSeconds = 0.0
  /// Steps whose update was discarded under `NonFinitePolicy.skipStep`.
  public private(set) var skippedSteps = 0

  private var lastCheckpointRequests: Int32 = 0
  /// Start of the previous step and the time from it to the current step's start: the whole
  /// cycle (the step, the observer, the boundary's control collective), logged as `cycle_ms`.
  private var previousStepStartNs: UInt64 = 0
  private var cycleNs: UInt64 = 0
  /// Ticks spent paused (selects which paused ticks collect every rank's signal).
  private var pausedTicks = 0
  /// How this rank waits while the job is paused: set by the launcher when the ranks of a node
  /// share a segment; nil, every rank ticks over the world (see `pausedTick`).
  public var pausedSleep: PausedSleep? = nil
  private var metrics = StepMetrics()
  private static let tensors = ParameterViews.tensorCount
  /// Where the (Σ update², Σ new weight²) pairs start in `statSums`, after one Σg² per tensor.
  private static let updateSums = tensors
  /// Scratch for per-tensor statistics: gradient, update and weight sums of squares, and the
  /// published (weight norm, gradient norm, update ratio) triples.
  private let statSums = UnsafeMutablePointer<Double>.allocate(capacity: 3 * Trainer.tensors)
  private let statValues = UnsafeMutablePointer<Float>.allocate(capacity: 3 * Trainer.tensors)
  private let statm: Int32
  private let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
  private var logFile: UnsafeMutablePointer<FILE>? = nil
  /// The first failed write of the `--log` file (world rank 0), nil while every line got there.
  public private(set) var logWriteError: String? = nil
  /// The data-parallel half of the step (gradient reduction, norm, AdamW): replicated, or
  /// partitioned over DP under `--distributed-optimizer`; chosen once here.
  public let optimizer: DataParallelOptimizer

  public init(model: GPT, loader: DataLoader, world: Communicator, tpGroup: Communicator,
              dpGroup: Communicator, grid: ParallelLayout, options: TrainingOptions,
              observer: TrainingObserver) throws {
    self.model = model
    self.loader = loader
    self.world = world
    self.tpGroup = tpGroup
    self.dpGroup = dpGroup
    self.grid = grid
    self.options = options
    self.observer = observer
    // exposed and in-flight time is measured over both groups together
    tpGroup.activity = dpGroup.activity
    // the buckets all-reduce, or under the distributed optimizer reduce-scatter into its blocks;
    // under sequence parallelism they first sum the replicated gradients over TP
    let buckets = try model.parallel.gradientBucketBytes.map {
      try GradientBuckets(model: model, dpGroup: dpGroup, tpGroup: tpGroup, bucketBytes: $0)
    }
    model.gradientBuckets = buckets
    optimizer = model.parallel.distributedOptimizer
      ? DistributedOptimizer(model: model, dpGroup: dpGroup, tpGroup: tpGroup, buckets: buckets)
      : ReplicatedOptimizer(model: model, dpGroup: dpGroup, tpGroup: tpGroup, buckets: buckets)
    statm = open("/proc/self/statm", O_RDONLY)
    if world.rank == 0, let path = options.logPath {
      // a resumed run continues the log from its step instead of emptying it
      logFile = try RunLog.open(path, startStep: options.startStep)
    }
    losses.reserveCapacity(max(0, options.steps - options.startStep))
    step = options.startStep
    if options.startStep > 0 { lastCheckpointStep = options.startStep }
  }

  deinit {
    statSums.deallocate()
    statValues.deallocate()
    if statm >= 0 { close(statm) }
    if let f = logFile { fclose(f) }
  }

  /// Runs until `options.steps` or a stop request; returns the number of steps run.
  @discardableResult
  public func run() throws -> Int {
    observer.stateChanged(.running)
    let flopsPerRank = model.config.flopsPerToken(seqLen: model.T) * Double(model.B * model.T) / Double(grid.tp)
    stopReason = .completed
    AllocationProbe.trackCurrentThread()
    while step < options.steps {
      // control, applied by every rank at this boundary
      var (decision, signal) = exchangeDecision(over: world, sleepy: false)
      if try applyBoundary(decision, signal: signal) { break }
      if decision.desired == .pause {
        decision = try pausedLoop()
        if stopReason != .completed { break }
      }
      if decision.desired == .stop {
        stopReason = .stopRequested
        observer.event(.stopped(step: step))
        break
      }

      let allocationsBefore = AllocationProbe.count()
      let t0 = monotonicNanos()
      cycleNs = previousStepStartNs == 0 ? 0 : t0 &- previousStepStartNs
      previousStepStartNs = t0
      loader.load(step: step, inputs: model.inputs, targets: model.targets)
      let t1 = monotonicNanos()
      tpGroup.resetStats()
      dpGroup.resetStats()
      dpGroup.activity.reset()
      let localLoss = model.forward()
      let t2 = monotonicNanos()
      model.backward()
      let t3 = monotonicNanos()
      optimizer.synchronizeGradients()
      // the replicas' gradients are summed; the 1/d of the average is applied inside the norm
      // and the AdamW sweep (`gradScale`) rather than in a pass of its own
      let dpScale = 1 / Float(grid.dp)
      if step == 0, let prefix = options.dumpGradsPrefix {
        optimizer.gatherGradients()
        dumpGradients(prefix, scale: dpScale)
      }
      if step + 1 == options.faultNonFiniteAtStep { model.gradsMemory[0] = .nan }
      let publishStats = options.shardStatsEvery > 0 && (step == 0 || (step + 1) % options.shardStatsEvery == 0)
      let lr = options.schedule.rate(peak: options.optimizer.learningRate, step: step, total: options.steps)
      // the global loss first, so a step can be judged before its update is applied
      var loss = Double(localLoss)
      dpGroup.allReduce(&loss, count: 1, .sum)
      loss /= Double(grid.dp)
      let norm = update(lr: lr, gradScale: dpScale, loss: loss, publishStats: publishStats)
      let finite = loss.isFinite && norm.isFinite
      let t4 = monotonicNanos()

      step += 1
      lastLoss = Float(loss)
      fillMetrics(loss: Float(loss), lr: lr, norm: norm, t0: t0, t1: t1, t2: t2, t3: t3, t4: t4, flops: flopsPerRank)
      observer.stepFinished(metrics)
      if publishStats && finite { publishTensorStatistics() }
      // the first step may fill lazily allocated library pools; every later one must not allocate
      if step > 1 { stepAllocations += AllocationProbe.count() - allocationsBefore }
      if !finite {
        observer.event(.nonFiniteLoss(step: step))
        if options.onNonFinite == .skipStep { skippedSteps += 1 }
      }
      losses.append(Float(loss))
      if world.rank == 0 { report() }
      if !finite && options.onNonFinite == .stop {
        stopReason = .nonFinite(step: step, loss: Float(loss), norm: norm)
        observer.event(.error(String(format: "non-finite loss %g or gradient norm %g at step %d: stopped without a checkpoint", loss, norm, step)))
        observer.stateChanged(.failed)
        return step
      }
    }
    // every clean end (the last step, or a stop request) leaves a checkpoint when they are on
    if (stopReason == .completed || stopReason == .stopRequested) && options.checkpointEvery > 0 && lastCheckpointStep != step {
      try checkpoint(reason: stopReason == .completed ? "final" : "stop")
    }
    if let path = options.savePath {
      observer.stateChanged(.checkpointing)
      try model.save(path: path, world: world, dpRank: grid.dpRank)
      observer.event(.checkpointSaved(step: step, path: path))
    }
    observer.stateChanged(.finished)
    return step
  }

  /// The optimizer step: AdamW with gradients `gradScale · grads`, clipped to the global norm
  /// when `gradClip` > 0; returns that norm. A step whose loss or norm is not finite is not
  /// applied when it must be judged first (clipping, or `skip-step`); otherwise the AdamW sweep
  /// also sums the squares the norm needs, and a non-finite step stops the run before anything
  /// of it is checkpointed.
  private func update(lr: Float, gradScale: Float, loss: Double, publishStats: Bool) -> Float {
    let o = options.optimizer
    let stats = publishStats ? statSums + Self.updateSums : nil
    guard o.gradClip > 0 || options.onNonFinite == .skipStep else {
      optimizer.update(o, lr: lr, t: step + 1, gradScale: gradScale, gradSquares: statSums, stats: stats)
      return model.globalNorm(tensorSquares: statSums, tpGroup: tpGroup)
    }
    let norm = optimizer.gradientNorm(scale: gradScale, perTensor: publishStats ? statSums : nil)
    guard loss.isFinite && norm.isFinite else { return norm }
    let clipped = gradScale * (o.gradClip > 0 && norm > o.gradClip ? o.gradClip / norm : 1)
    optimizer.update(o, lr: lr, t: step + 1, gradScale: clipped, gradSquares: nil, stats: stats)
    return norm
  }

  /// One small collective per step boundary: an all-reduce(max) over `group` (the world, or
  /// while paused the node leaders) of [desired state, checkpoint counter, signal]. Rank 0
  /// contributes the observer's decision (the others −∞), every rank `signal`, so a signal that
  /// reached only one rank stops all of them together.
  ///
  /// While paused (`sleepy`), a blocking all-reduce would spin on whichever rank arrives first,
  /// so most ticks only broadcast rank 0's decision with a sleeping wait; every
  /// `pausedSignalTicks`-th tick a sleeping barrier followed by the all-reduce also collects the
  /// other ranks' signals: while paused, a signal that reached only ranks other than 0 is seen
  /// within about a second (rank 0's own signal rides on every broadcast).
  private func exchangeDecision(over group: Communicator, sleepy: Bool,
                                signal: Int32 = StopSignal.received) -> (ControlDecision, signal: Int32) {
    let mine = StepBoundary(decision: group.rank == 0 ? observer.pollControl() : nil, signal: signal)
    if sleepy {
      pausedTicks &+= 1
      if pausedTicks % Self.pausedSignalTicks != 0 {
        var packed = mine.broadcast
        withUnsafeMutableBytes(of: &packed) { raw in
          group.sleepyBroadcast(raw.baseAddress!.assumingMemoryBound(to: Int32.self), count: 3, pollMicros: tickMicros)
        }
        let agreed = StepBoundary(broadcast: packed)
        return (agreed.decision, agreed.signal)
      }
      group.sleepyBarrier(pollMicros: tickMicros)
    }
    var packed = mine.reduced
    withUnsafeMutableBytes(of: &packed) { raw in
      group.allReduce(raw.baseAddress!.assumingMemoryBound(to: Double.self), count: 3, .max, kind: .control)
    }
    let agreed = StepBoundary(reduced: packed, requests: lastCheckpointRequests)
    return (agreed.decision, agreed.signal)
  }

  /// While paused, one tick in this many collects every ticking rank's signal (see `exchangeDecision`).
  static let pausedSignalTicks = 100
  /// A paused tick: rank 0 sleeps this long between control polls, and the other ticking ranks
  /// nap as long between tests of the decision's broadcast (no more wake-ups than rank 0 has
  /// ticks).
  static let pausedTickMicros: UInt32 = 10_000
  /// Between node leaders of several nodes a tick is twice as long: each leader's test of the
  /// broadcast costs as much as rank 0's poll, and a resume still reaches every rank within
  /// about 40 ms (rank 0's poll, then one nap of the slowest leader).
  static let pausedNodesTickMicros: UInt32 = 20_000
  /// The tick of this job (see above).
  private var tickMicros: UInt32 {
    (pausedSleep?.leaders.size ?? 1) > 1 ? Self.pausedNodesTickMicros : Self.pausedTickMicros
  }
  /// A paused rank sleeping on its node (`pausedSleep`) wakes at least this often, to beat and
  /// to pass on a signal it received.
  static let pausedSleepNs: Int64 = 100_000_000

  /// Applies checkpoint requests, periodic checkpoints and signals at a step boundary; returns
  /// true when the job must stop now (a signal: checkpoint written first).
  private func applyBoundary(_ decision: ControlDecision, signal: Int32) throws -> Bool {
    if decision.checkpointRequests != lastCheckpointRequests {
      lastCheckpointRequests = decision.checkpointRequests
      try checkpoint(reason: "request")
    }
    let every = options.checkpointEvery
    if every > 0 && step % every == 0 && step != lastCheckpointStep && step > options.startStep {
      try checkpoint(reason: "periodic")
    }
    if signal != 0 {
      if step != lastCheckpointStep { try checkpoint(reason: "signal \(StopSignal.name(signal))") }
      stopReason = .signal(signal)
      observer.event(.stopped(step: step))
      return true
    }
    return false
  }

  /// Sleeps at the step boundary until the decision is no longer `pause`, keeping heartbeats.
  private func pausedLoop() throws -> ControlDecision {
    observer.stateChanged(.paused)
    observer.event(.paused(step: step))
    // a signal word left by an earlier process on this node's segment means nothing now (a rank
    // that has a signal posts it again at its next wake)
    if let sleep = pausedSleep, sleep.isLeader { sleep.node.clearPostedSignal() }
    var decision = ControlDecision(desired: .pause, checkpointRequests: lastCheckpointRequests)
    while decision.desired == .pause {
      let (next, signal) = pausedTick(current: decision)
      decision = next
      let requested = decision.checkpointRequests != lastCheckpointRequests
      if try applyBoundary(decision, signal: signal) { return decision }
      if requested { observer.stateChanged(.paused) }
    }
    if decision.desired == .run {
      observer.stateChanged(.running)
      observer.event(.resumed(step: step))
    }
    return decision
  }

  /// Waits, paused, until something may have changed, then returns the decision every rank of
  /// the world agrees on (possibly `current` again).
  ///
  /// Without `pausedSleep` every rank ticks: rank 0 polls the control page every
  /// `pausedTickMicros` and broadcasts what it read. With it, only the node leaders tick (over
  /// their own communicator); the other ranks sleep on their node's wake word, so a paused job's
  /// CPU does not grow with its ranks per node. When a tick shows a change (another desired
  /// state, a checkpoint request, a signal), every leader wakes its node and the whole world
  /// exchanges the decision as at a step boundary.
  private func pausedTick(current: ControlDecision) -> (ControlDecision, signal: Int32) {
    guard let sleep = pausedSleep else {
      observer.heartbeat()
      if world.rank == 0 { usleep(tickMicros) }
      return exchangeDecision(over: world, sleepy: true)
    }
    while true {
      observer.heartbeat()
      if sleep.isLeader {
        if world.rank == 0 { usleep(tickMicros) }
        let signal = max(StopSignal.received, sleep.node.postedSignal())
        let (seen, seenSignal) = exchangeDecision(over: sleep.leaders, sleepy: true, signal: signal)
        // every leader sees the same tick, so they all wake their nodes at the same one
        if seen == current && seenSignal == 0 { continue }
        sleep.node.wakeNode()
      } else if !sleep.node.sleepUntilWoken(timeoutNs: Self.pausedSleepNs) {
        if StopSignal.received != 0 { sleep.node.postSignal(StopSignal.received) }
        continue
      }
      return exchangeDecision(over: world, sleepy: false)
    }
  }

  /// The run's configuration as recorded in checkpoints.
  public var runConfiguration: RunConfiguration {
    RunConfiguration(model: model.config, batch: model.B, seq: model.T, totalSteps: options.steps,
                     optimizer: options.optimizer, schedule: options.schedule, dataPath: loader.stream.path,
                     dataTokens: loader.stream.count, seed: options.seed)
  }

  /// Writes a checkpoint of the current step into `options.checkpointDir` (collective) and
  /// returns its directory.
  @discardableResult
  public func checkpoint(reason: String) throws -> String {
    observer.stateChanged(.checkpointing)
    let header = TrainingStateHeader(step: step, dataPosition: step, tp: grid.tp, dp: grid.dp,
                                     parameterCount: model.config.parameterCount, run: runConfiguration)
    let t0 = monotonicNanos()
    let path = try CheckpointStore.save(model: model, header: header, reason: reason, dir: options.checkpointDir,
                                        keep: options.keepCheckpoints, lineage: options.lineage, world: world,
                                        dpRank: grid.dpRank)
    lastCheckpointSeconds = Double(monotonicNanos() - t0) / 1e9
    lastCheckpointPath = path
    lastCheckpointStep = step
    observer.event(.checkpointSaved(step: step, path: path))
    observer.stateChanged(.running)
    if world.rank == 0 && options.printSteps {
      print("checkpoint \(path) (\(reason)) written in " + String(format: "%.1f ms", lastCheckpointSeconds * 1000))
      fflush(nil)
    }
    return path
  }

  /// Saves a checkpoint now (collective), as for a controller's request.
  public func checkpointNow() throws { try checkpoint(reason: "request") }

  /// Per local tensor: ‖θ‖, ‖g‖ (before clipping) and ‖Δθ‖/‖θ‖ of this step's update.
  private func publishTensorStatistics() {
    let n = model.localSizes.count
    for i in 0..<n {
      let w = statSums[Self.updateSums + 2 * i + 1].squareRoot()
      statValues[3 * i] = Float(w)
      statValues[3 * i + 1] = Float(statSums[i].squareRoot())
      statValues[3 * i + 2] = w > 0 ? Float(statSums[Self.updateSums + 2 * i].squareRoot() / w) : 0
    }
    observer.tensorStatistics(step: step, values: UnsafeBufferPointer(start: statValues, count: 3 * n))
  }

  /// Writes this rank's gradient (times `scale`: the DP average) for the equivalence tests.
  private func dumpGradients(_ prefix: String, scale: Float) {
    let path = "\(prefix).rank\(world.rank).bin"
    guard let f = fopen(path, "w") else { return }
    let n = model.numLocalParameters
    let scaled = [Float](unsafeUninitializedCapacity: n) { out, count in
      for i in 0..<n { out[i] = model.gradsMemory[i] * scale }
      count = n
    }
    scaled.withUnsafeBufferPointer { _ = fwrite($0.baseAddress, 4, n, f) }
    fclose(f)
  }

  private func fillMetrics(loss: Float, lr: Float, norm: Float, t0: UInt64, t1: UInt64, t2: UInt64,
                           t3: UInt64, t4: UInt64, flops: Double) {
    let tps = tpGroup.stats, dps = dpGroup.stats
    metrics.step = step
    metrics.loss = loss
    metrics.lr = lr
    metrics.gradNorm = norm
    metrics.tokens = model.B * model.T
    metrics.stepNs = t4 - t0
    metrics.dataNs = t1 - t0
    metrics.forwardNs = t2 - t1
    metrics.backwardNs = t3 - t2
    metrics.optimizerNs = t4 - t3
    let activity = dpGroup.activity
    metrics.commNs = activity.exposedNs
    metrics.commPeerWaitMicros = UInt32(truncatingIfNeeded: min(activity.peerWaitNs / 1000, UInt64(UInt32.max)))
    metrics.allReduceCount = tps.count + dps.count
    metrics.allReduceBytes = tps.bytes + dps.bytes
    metrics.allReduceTotalNs = activity.inFlightNs
    metrics.allReduceMaxNs = max(tps.maxNs, dps.maxNs)
    metrics.allReduceHistogram = tps.histogram + dps.histogram
    metrics.rssBytes = residentBytes()
    let memory = model.memory
    metrics.paramBytes = UInt64(memory.parameters)
    metrics.gradBytes = UInt64(memory.gradients)
    metrics.optimizerBytes = UInt64(memory.optimizer)
    metrics.activationBytes = UInt64(memory.activations)
    let busy = Double(metrics.stepNs) - Double(metrics.commNs) - Double(metrics.dataNs)
    metrics.computeBusy = Float(max(0, busy) / Double(max(1, metrics.stepNs)))
    metrics.gflops = Float(flops / Double(max(1, metrics.stepNs)))
  }

  /// Resident set size in bytes, from /proc/self/statm (one pread into a stack buffer: no
  /// allocation, so the step can read it).
  public func residentBytes() -> UInt64 {
    guard statm >= 0 else { return 0 }
    var buf: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    return withUnsafeMutableBytes(of: &buf) { raw -> UInt64 in
      let n = pread(statm, raw.baseAddress, raw.count, 0)
      guard n > 0 else { return 0 }
      var field = 0
      var value: UInt64 = 0
      for i in 0..<n {
        let ch = raw[i]
        if ch == 32 { if field == 1 { break }; field += 1; value = 0; continue }
        if field == 1 && ch >= 48 && ch <= 57 { value = value * 10 + UInt64(ch - 48) }
      }
      return value * UInt64(pageSize)
    }
  }

  private func report() {
    let ms = Double(metrics.stepNs) / 1e6
    // the job's rate: this replica's (StepMetrics.tokensPerSecond) times d
    let tokS = StepMetrics.jobTokensPerSecond(replicaRates: [metrics.tokensPerSecond], dp: grid.dp) ?? 0
    if options.printSteps {
      print(String(format: "step %5d/%d | loss %.6f | lr %.2e | norm %.4f | %8.1f ms | %8.0f tok/s",
                   step, options.steps, metrics.loss, metrics.lr, metrics.gradNorm, ms, tokS))
      fflush(nil)
    }
    if let f = logFile {
      // wall-clock time of the line, as `tptop export` writes a record's
      let unixNs = WallClock.nowUnixNs()
      let line = StepLog.line(step: step, metrics: metrics, dp: grid.dp, skippedSteps: skippedSteps, cycleNs: cycleNs,
                              unixNs: unixNs) + "\n"
      // JSON has no NaN or infinity: a non-finite value is written as null (LogForm.text)
      fputs(line, f)
      if fflush(f) != 0 || ferror(f) != 0, logWriteError == nil {
        // said once, at once; training goes on, and the run ends with a failure status
        let why = String(cString: strerror(errno))
        logWriteError = "cannot write the log \(options.logPath ?? ""): \(why) from step \(step) on; free space or choose another --log"
        let text = "tptrain: error: \(logWriteError!)\n"
        _ = text.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
      }
    }
  }
}

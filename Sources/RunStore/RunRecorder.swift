// The recorder: a thread in world rank 0's process that reads every rank's ring of the job's
// segment as any reader does (after forwarding, that segment holds every rank) and writes what
// it reads into the run store in one transaction every `commitInterval`. The training step
// never sees it: no call, no allocation, no I/O of the step is added. A store failure prints
// one warning line and ends recording; training goes on.

import Foundation
import CSched
import Glibc
import JobSchema
import Telemetry

/// Records one job into the run store from a background thread.
public final class RunRecorder: @unchecked Sendable {
  /// Longest pause between two polls of the rings: one poll per transaction at any real step
  /// rate (a ring of 4096 slots fills in 4096 steps), so the recorder wakes 2.5 times a second.
  public static let maxPollInterval = 0.4
  /// Shortest pause (tiny rings and fast steps).
  public static let minPollInterval = 0.001
  /// Time between two transactions: a kill -9 of this process loses at most this much (and the
  /// time a transaction takes).
  public var commitInterval = 0.4

  let reader: JobReader
  let file: RunFile
  let accumulator: RunAccumulator
  let warn: @Sendable (String) -> Void
  let condition = NSCondition()
  private var stopping = false
  private var finalState: String?
  private var thread: Thread?
  private var done = false
  /// The last store problem (nil while recording works).
  public private(set) var failure: String?
  private var hosts: [String] = []
  private var recentStepNs: Double = 0
  /// World rank 0's rescue of the records this thread has not read yet (`RingRescue`): its
  /// training thread calls `rescue.rescue()` at every step end.
  public let rescue: RingRescue
  private var rescueLost: UInt64 = 0
  /// Fault injection for tests: this many ms of sleep before every poll (a recorder starved on a
  /// loaded host), from `TPTOP_RECORDER_TEST_STALL_MS`.
  private let testStallMs = Int(ProcessInfo.processInfo.environment["TPTOP_RECORDER_TEST_STALL_MS"] ?? "") ?? 0
  /// Benchmark switch, from `TPTOP_RECORDER_BENCH_DUTY_S` (seconds, 0 = off): the recorder
  /// records only during even blocks of this many wall-clock seconds (`unix time / duty` even)
  /// and sleeps through odd ones, skipping what was written meanwhile — recording on and off
  /// inside one run, so that a benchmark compares the two a few seconds apart
  /// (`scripts/bench_record.py`). The stored run then lacks the odd blocks' steps.
  private let benchDuty = Double(ProcessInfo.processInfo.environment["TPTOP_RECORDER_BENCH_DUTY_S"] ?? "") ?? 0
  private var lastCommit = Date()

  /// Opens job `job`'s segment (in namespace `space`) and the run's database. A restart
  /// (`reopen`) of a run whose last incarnation did not finish records an event saying so, at
  /// that incarnation's last step and time, and one for the resume (`resumedFrom`: the
  /// checkpoint directory and its step): what a stored run's Events view tells of a restart.
  /// - Throws: `StoreError` or `TelemetryError`, one line each.
  public init(job: String, in space: SegmentSpace, location: StoreLocation, header: RunHeader, reopen: Bool,
              resumedFrom: (path: String, step: Int)? = nil, warn: @escaping @Sendable (String) -> Void) throws {
    reader = try JobReader(job: job, in: space)
    rescue = RingRescue(segment: try JobReader(job: job, in: space))
    var header = header
    header.tensors = reader.info.description.shards
    let wallMinusBootNs = header.wallMinusBootNs
      ?? Int64(bitPattern: telemetryRealtimeNanos()) &- Int64(bitPattern: telemetryMonotonicNanos())
    header.wallMinusBootNs = wallMinusBootNs
    file = try RunFile(location: location, header: header, reopen: reopen)
    accumulator = RunAccumulator(world: header.world, dp: header.dp, bucketSteps: header.bucketSteps,
                                 wallOffset: Double(wallMinusBootNs) / 1e9)
    self.warn = warn
    if let previous = file.previousIncarnation {
      // numbered as the supervisor numbers them: the first incarnation is 0
      let k = file.header.incarnations - 1
      // on the boot clock of the run's offset, as the rings' records are
      let offset = Double(file.header.wallMinusBootNs ?? wallMinusBootNs)
      func bootNs(wall: Double) -> UInt64 { UInt64(max(0, wall * 1e9 - offset)) }
      if previous.state != JobPhase.Word.finished.rawValue && previous.state != JobPhase.Word.stopped.rawValue {
        var e = EventRecord(kind: .error, step: previous.lastStep,
                            text: "incarnation \(k - 1) ended at step \(previous.lastStep) without finishing (last recorded: \(previous.state))")
        e.rank = -1  // the run store's own, not a rank's
        e.timestampNs = bootNs(wall: previous.updated)
        accumulator.add(e)
      }
      var e = EventRecord(kind: .resumed, step: resumedFrom?.step ?? previous.lastStep,
                          text: (resumedFrom.map { "from \($0.path), " } ?? "") + "incarnation \(k)")
      e.rank = -1
      e.timestampNs = bootNs(wall: Date().timeIntervalSince1970)
      accumulator.add(e)
    }
  }

  /// The run's name in the store.
  public var runName: String { file.header.name }

  /// Starts the recording thread.
  public func start() {
    let t = Thread { [self] in
      // the kernel's name of the thread (top -H, /proc/PID/task/TID/comm): Thread.name is Foundation's only
      _ = csched_setname(UInt(pthread_self()), "tptop-recorder")
      loop()
    }
    t.name = "tptop-recorder"
    thread = t
    t.start()
  }

  /// Ends recording: reads what the rings still hold (waiting up to `grace` seconds for the
  /// other ranks' last step), writes it with the run's final `state`, and returns when written.
  public func finish(state: JobPhase.Word, grace: Double = 1.0) {
    condition.lock()
    stopping = true
    finalState = state.rawValue
    condition.signal()
    while !done { condition.wait() }
    condition.unlock()
    _ = grace
  }

  private func loop() {
    while true {
      condition.lock()
      if stopping { condition.unlock(); break }
      _ = condition.wait(until: Date(timeIntervalSinceNow: pollInterval()))
      let stop = stopping
      condition.unlock()
      if stop { break }
      if failure != nil { continue }
      if testStallMs > 0 { usleep(useconds_t(testStallMs * 1000)) }
      if benchDuty > 0 && sitOutBenchBlock() { continue }
      pollRings()
      // (a wait may end a little early: 90 % of the interval is one)
      if Date().timeIntervalSince(lastCommit) >= 0.9 * commitInterval { commit(final: false) }
    }
    if failure == nil {
      waitForLastSteps(seconds: 1.0)
      pollRings()
      commit(final: true)
    }
    rescue.disable()
    condition.lock()
    done = true
    condition.broadcast()
    condition.unlock()
  }

  /// In an odd block of `benchDuty` seconds: sleeps to its end (or a stop), then skips every
  /// record written meanwhile; true when it slept.
  private func sitOutBenchBlock() -> Bool {
    let now = Date().timeIntervalSince1970
    guard Int(now / benchDuty) % 2 == 1 else { return false }
    let end = (floor(now / benchDuty) + 1) * benchDuty
    condition.lock()
    while !stopping && Date().timeIntervalSince1970 < end { _ = condition.wait(until: Date(timeIntervalSince1970: end)) }
    condition.unlock()
    reader.seekToEnd()
    var ends = (0..<reader.info.worldSize).map { reader.cursor(rank: $0) }
    rescue.drain(cursors: &ends) { _ in }
    for r in ends.indices { rescue.consumed(rank: r, through: reader.cursor(rank: r)) }
    return true
  }

  /// The pause between polls: a quarter of the time the smallest ring takes to fill at the
  /// current step rate, within [minPollInterval, maxPollInterval]. With 4096 slots a ring
  /// fills in 4096 steps, so the ceiling holds at steps of 0.4 ms and longer; with 16 slots and
  /// 5 ms steps the recorder polls every 20 ms.
  func pollInterval() -> Double {
    guard recentStepNs > 0 else { return reader.info.slotCount < 1024 ? Self.minPollInterval * 5 : Self.maxPollInterval }
    let fill = Double(reader.info.slotCount) * recentStepNs / 1e9
    return min(max(fill / 4, Self.minPollInterval), Self.maxPollInterval)
  }

  private func pollRings() {
    let now = telemetryMonotonicNanos()
    func take(_ rec: TelemetryRecord) {
      switch rec {
      case .step(let s):
        accumulator.add(s, nowNs: now)
        if s.rank == 0 { recentStepNs = recentStepNs == 0 ? Double(s.stepNs) : 0.8 * recentStepNs + 0.2 * Double(s.stepNs) }
      case .event(let e): accumulator.add(e)
      case .tensorStats(let t): accumulator.add(t)
      }
    }
    // what world rank 0 rescued from the rings since the last poll comes first (RingRescue)
    let world = reader.info.worldSize
    let marks = rescue.rescuedMarks()
    var cursors = (0..<world).map { reader.cursor(rank: $0) }
    rescue.drain(cursors: &cursors, take)
    let overwritten = rescue.overwritten
    if overwritten > rescueLost { accumulator.addLost(overwritten - rescueLost); rescueLost = overwritten }
    for r in 0..<world {
      reader.setCursor(rank: r, to: max(cursors[r], marks[r]))
      var result = RankPoll(rank: r)
      reader.poll(rank: r, into: &result, take)
      rescue.consumed(rank: r, through: reader.cursor(rank: r))
      if result.lost > 0 { accumulator.addLost(result.lost) }
    }
  }

  /// Waits until every attached rank has reported world rank 0's last step or has ended.
  private func waitForLastSteps(seconds: Double) {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
      let ranks = reader.ranks().filter(\.attached)
      let last = ranks.first(where: { $0.rank == 0 })?.lastStep ?? 0
      if ranks.allSatisfy({ $0.lastStep >= last || $0.state == .failed || !$0.pidAlive }) { return }
      usleep(5_000)
    }
  }

  private func commit(final: Bool) {
    lastCommit = Date()
    let batch = accumulator.takeBatch(nowNs: telemetryMonotonicNanos(), final: final)
    let ranks = reader.ranks()
    for r in ranks where r.attached && !r.host.isEmpty && !hosts.contains(r.host) { hosts.append(r.host) }
    let state = final ? (finalState ?? reader.phase(ranks: ranks, stalls: false).word.rawValue)
      : reader.phase(ranks: ranks, stalls: false).word.rawValue
    do {
      try file.write(batch, state: state, lastStep: accumulator.lastStep, finalLoss: accumulator.finalLoss,
                     bestLoss: accumulator.bestLoss, hosts: hosts.isEmpty ? nil : hosts.joined(separator: ","),
                     ended: final ? Date().timeIntervalSince1970 : nil)
      if batch.lost > 0 {
        warn("run store: \(batch.lost) records of run '\(runName)' were overwritten in the rings before they were recorded")
      }
    } catch {
      failure = "\(error)"
      rescue.disable()
      warn("\(error); recording of run '\(runName)' stopped, training goes on")
    }
  }
}

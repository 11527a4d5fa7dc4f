import Atomics
import Glibc
import JobSchema

/// What one `poll` found in one rank's ring since the previous poll.
public struct RankPoll: Sendable {
  /// World rank.
  public var rank: Int
  /// Step records accepted, in ring order.
  public var steps: [StepRecord] = []
  /// Event records accepted, in ring order.
  public var events: [EventRecord] = []
  /// Tensor-statistics records accepted, in ring order.
  public var tensorStats: [TensorStatsRecord] = []
  /// Records overwritten before this reader could copy them (exact: accepted + lost + corrupt
  /// equals the records published since the previous poll).
  public var lost: UInt64 = 0
  /// Records copied consistently whose checksum or kind was wrong (0 unless memory is damaged).
  public var corrupt: UInt64 = 0
  /// The ring's write index at this poll.
  public var writeIndex: UInt64 = 0
  /// Of `lost`, the records whose slot was overwritten while this reader was copying it (the
  /// seqlock's second check caught the tear).
  public var torn: UInt64 = 0
  /// Slots this reader examined (accepted, corrupt, or found overwritten by the seqlock check);
  /// records skipped because the writer lapped the reader are not counted.
  public var reads: UInt64 = 0

  /// An empty result for world rank `rank`.
  public init(rank: Int) { self.rank = rank }
}

/// A reader's view of one job. Attaches read-only; control writes map the control page
/// read-write on first use. Not thread-safe: use one reader per thread.
///
///     let job = try JobReader(job: "run1")
///     let polls = job.poll()                 // new records of every rank since the last poll
///     try job.request(.pause)                // compare-and-swap on the desired-state word
public final class JobReader {
  /// Job name.
  public let name: String
  /// The namespace the job's segment is in.
  public let space: SegmentSpace
  /// Header and job description, read once at attach.
  public let info: JobInfo
  /// Seconds without heartbeat after which a rank whose pid is gone counts as dead (the job failed).
  public var staleAfter: Double = 5

  let mapping: MappedSegment
  let geometry: SegmentGeometry
  var controlMapping: MappedSegment?
  /// Per rank, the next ring index this reader will read.
  private var cursors: [UInt64]
  private var scratch = SlotPayload()

  typealias R = SegmentLayout.RankHeader
  typealias S = SegmentLayout.Slot
  typealias C = SegmentLayout.Control

  /// How long a segment may stay not ready before a reader calls it abandoned (creation takes
  /// well under a second: one ftruncate and a header write).
  public static let creationGrace: Double = 10

  /// Attaches to job `job`. Validates magic, major version, size, ready word and owner.
  /// `requireDescription: false` attaches for control (stop, pause, resume, checkpoint) also when
  /// the job description's shard table is damaged, as long as the header and control page are
  /// intact; `info.shards` is then empty.
  /// - Throws: `TelemetryError` with a one-line description (`abandoned` for a segment still not
  ///   ready `creationGrace` seconds after its creation).
  public init(job: String, in space: SegmentSpace, requireDescription: Bool = true) throws {
    let h: ValidatedHeader
    do {
      mapping = try MappedSegment.open(job: job, in: space, writable: false)
      h = try ValidatedHeader.validate(base: mapping.base, size: mapping.size, job: job, checkOwner: true,
                                       requireDescription: requireDescription, fileOwner: mapping.fileOwner,
                                       allocatedBytes: mapping.allocatedBytes)
    } catch TelemetryError.notReady(let n) {
      let age = JobDirectory.segmentAge(job: job, in: space)
      if age >= Self.creationGrace { throw TelemetryError.abandoned(job: n, seconds: Int(age)) }
      throw TelemetryError.notReady(n)
    }
    name = job
    self.space = space
    info = h.info
    geometry = h.geometry
    cursors = Array(repeating: 0, count: h.geometry.worldSize)
  }

  // MARK: Status

  /// Rank `r`'s header (0 <= r < worldSize; other values give an empty, unattached status).
  public func rankStatus(_ r: Int) -> RankStatus {
    guard r >= 0 && r < geometry.worldSize else {
      return RankStatus(
        rank: r, attached: false, pid: 0, host: "", localRank: 0, heartbeatAge: nil, state: nil,
        writeIndex: 0, lastStep: 0, ackedState: nil, ackedStep: 0, checkpointsSaved: 0,
        lastCheckpointStep: 0, pidAlive: false)
    }
    let h = mapping.base + geometry.rankHeaderOffset(r)
    let m = Memory(base: h)
    let word = atomicWord(h + R.localRank).load(ordering: .acquiring)
    let attached = UInt32(truncatingIfNeeded: word >> 32) == R.attachedValue
    let pid = Int32(bitPattern: m.u32(R.pid))
    let hb = atomicWord(h + R.heartbeatNs).load(ordering: .relaxed)
    let now = telemetryMonotonicNanos()
    let age: Double? = hb == 0 ? nil : (now > hb ? Double(now - hb) / 1e9 : 0)
    var waiting: CollectiveWait? = nil
    if geometry.rankHeaderStride > R.waitSinceNs {
      let word = atomicWord(h + R.waitingIn).load(ordering: .acquiring)
      waiting = CollectiveWait(word: word, sinceNs: atomicWord(h + R.waitSinceNs).load(ordering: .relaxed), nowNs: now)
    }
    var node = 0
    var forwarded = false
    var alive = attached && processAlive(pid)
    var source: UInt64 = 0
    var sent: UInt64 = 0
    if geometry.rankHeaderStride > R.forwarderPid {
      node = Int(m.u32(R.nodeIndex))
      forwarded = m.u32(R.flags) & R.forwardedFlag != 0
      if forwarded {
        // the rank's pid is on another node: its header lives as long as its forwarder does
        alive = attached && processAlive(Int32(bitPattern: m.u32(R.forwarderPid)))
        source = atomicWord(h + R.sourceRecords).load(ordering: .relaxed)
        sent = atomicWord(h + R.forwardedRecords).load(ordering: .acquiring)
      }
    }
    // the accelerator words (0 everywhere: no device reported)
    var device: DeviceUsage?
    if geometry.rankHeaderStride > R.deviceUtilization {
      let (a, rs, p) = (m.u64(R.deviceMemoryAllocated), m.u64(R.deviceMemoryReserved), m.u64(R.deviceMemoryPeak))
      let u = m.u32(R.deviceUtilization)
      if a != 0 || rs != 0 || p != 0 || u != 0 {
        device = DeviceUsage(allocatedBytes: a, reservedBytes: rs, peakBytes: p, utilization: u == 0 ? nil : Double(min(u - 1, 100)) / 100)
      }
    }
    var status = RankStatus(
      rank: r, attached: attached, pid: pid, host: m.text(R.host, capacity: R.hostCapacity),
      localRank: Int(UInt32(truncatingIfNeeded: word)), heartbeatAge: attached ? age : nil,
      state: RunState(rawValue: atomicWord(h + R.state).load(ordering: .acquiring)),
      writeIndex: atomicWord(h + R.writeIndex).load(ordering: .acquiring),
      lastStep: Int(truncatingIfNeeded: atomicWord(h + R.lastStep).load(ordering: .relaxed)),
      ackedState: DesiredState(rawValue: atomicWord(h + R.ackedDesiredState).load(ordering: .acquiring)),
      ackedStep: Int(truncatingIfNeeded: atomicWord(h + R.ackedStep).load(ordering: .relaxed)),
      checkpointsSaved: Int(truncatingIfNeeded: atomicWord(h + R.checkpointsSaved).load(ordering: .acquiring)),
      lastCheckpointStep: Int(truncatingIfNeeded: atomicWord(h + R.lastCheckpointStep).load(ordering: .relaxed)),
      pidAlive: alive, waiting: waiting, node: node, forwarded: forwarded, sourceRecords: source,
      forwardedRecords: sent)
    status.device = device
    return status
  }

  /// Nodes whose ranks all stopped reporting: every attached, unfinished rank of the node is
  /// forwarded from it and has a heartbeat older than `after` seconds (a forwarded heartbeat is
  /// the time world rank 0 last heard from the rank: at each of its step ends, and every 0.1 s
  /// while it waits or is paused). Readers pass `stallThreshold()`, so a long step is not a
  /// lost node. Sorted; empty when none.
  public static func lostNodes(_ rs: [RankStatus], after: Double) -> [Int] {
    let byNode = Dictionary(grouping: rs.filter { $0.attached && $0.forwarded }, by: \.node)
    return byNode.filter { _, ranks in
      let live = ranks.filter { $0.state != .finished && $0.state != .failed }
      return !live.isEmpty && live.allSatisfy { ($0.heartbeatAge ?? .infinity) > after }
    }.keys.sorted()
  }

  /// Nodes the attached ranks run on.
  public static func nodeCount(_ rs: [RankStatus]) -> Int {
    (rs.filter(\.attached).map(\.node).max() ?? 0) + 1
  }

  /// Rank `r`'s reported state alone (one load; nil for an unknown value or rank).
  public func rankState(_ r: Int) -> RunState? {
    guard r >= 0 && r < geometry.worldSize else { return nil }
    return RunState(rawValue: atomicWord(mapping.base + geometry.rankHeaderOffset(r) + R.state).load(ordering: .acquiring))
  }

  /// Every rank's header, by world rank.
  public func ranks() -> [RankStatus] { (0..<geometry.worldSize).map(rankStatus) }

  /// The job's phase (`JobPhase.judge`) from its rank headers, its control page, the stall
  /// diagnosis (unless `stalls` is false: a reader that polls the rings itself, such as the
  /// recorder, skips the diagnosis's reads of rank 0's ring) and its planned step count.
  public func phase(stalls: Bool = true) -> JobPhase { phase(ranks: ranks(), stalls: stalls) }

  /// The job's phase judged from rank headers the caller has just read (`ranks()`).
  public func phase(ranks rs: [RankStatus], stalls: Bool = true) -> JobPhase {
    var e = evidence(rs)
    if stalls { e.stall = StallDiagnosis.judge(rs, threshold: stallThreshold(), frozenThreshold: frozenThreshold()) }
    return JobPhase.judge(e)
  }

  /// The evidence every phase of this job is judged from, without a stall diagnosis.
  func evidence(_ rs: [RankStatus]) -> PhaseEvidence {
    var e = PhaseEvidence(ranks: rs.map(\.phaseEvidence))
    e.creatorAlive = processAlive(info.creatorPid)
    e.staleAfter = staleAfter
    e.desired = control().desired
    e.ignoresRequest = info.features.ignoresControl
    e.lastStep = rs.map(\.lastStep).max() ?? 0
    e.totalSteps = info.totalSteps
    return e
  }

  /// The rank that failed first (`JobPhase.firstFailedRank`). Nil when no rank failed.
  public static func failedRank(_ rs: [RankStatus], staleAfter: Double) -> Int? {
    JobPhase.firstFailedRank(rs.map(\.phaseEvidence), staleAfter: staleAfter)
  }

  /// The control page.
  public func control() -> ControlStatus {
    let c = mapping.base + geometry.controlOffset
    return ControlStatus(
      desired: DesiredState(rawValue: atomicWord(c + C.desiredState).load(ordering: .acquiring)),
      checkpointRequests: atomicWord(c + C.checkpointRequests).load(ordering: .acquiring),
      observedDesired: DesiredState(rawValue: atomicWord(c + C.observedDesiredState).load(ordering: .acquiring)),
      observedCheckpointRequests: atomicWord(c + C.observedCheckpointRequests).load(ordering: .acquiring))
  }

  // MARK: Records

  /// Moves every rank's cursor to `max(writeIndex - keepLast, 0)`, so the next poll returns at
  /// most the `keepLast` newest records per rank (and counts nothing older as lost).
  public func seekToEnd(keepLast: Int = 0) {
    for r in 0..<geometry.worldSize {
      let head = atomicWord(mapping.base + geometry.rankHeaderOffset(r) + R.writeIndex).load(ordering: .acquiring)
      let keep = UInt64(max(keepLast, 0))
      cursors[r] = head > keep ? head - keep : 0
    }
  }

  /// The next ring index `poll` reads of rank `rank`.
  public func cursor(rank: Int) -> UInt64 { cursors[rank] }

  /// Moves rank `rank`'s cursor to `index`: a reader that took records from elsewhere (a
  /// `RingRescue` queue) moves it past them.
  public func setCursor(rank: Int, to index: UInt64) { cursors[rank] = index }

  /// Moves every rank's cursor back to 0: the next poll returns every record still in the rings
  /// and counts the overwritten ones as lost.
  public func seekToStart() {
    for r in cursors.indices { cursors[r] = 0 }
  }

  /// New records of every rank since the previous poll (the first poll returns everything still
  /// in the rings).
  public func poll() -> [RankPoll] { (0..<geometry.worldSize).map { poll(rank: $0) } }

  /// New records of rank `rank` since its previous poll. Empty for a rank outside the world.
  public func poll(rank: Int) -> RankPoll {
    var out = RankPoll(rank: rank)
    guard rank >= 0 && rank < geometry.worldSize else { return out }
    var steps: [StepRecord] = []
    var events: [EventRecord] = []
    var tensorStats: [TensorStatsRecord] = []
    poll(rank: rank, into: &out) { rec in
      switch rec {
      case .step(let s): steps.append(s)
      case .event(let e): events.append(e)
      case .tensorStats(let t): tensorStats.append(t)
      }
    }
    out.steps = steps
    out.events = events
    out.tensorStats = tensorStats
    return out
  }

  /// Allocation-free form of `poll(rank:)`: calls `body` for each accepted record and updates
  /// the counters of `result` (records are not appended). Returns accepted records.
  @discardableResult
  public func poll(rank: Int, into result: inout RankPoll, _ body: (TelemetryRecord) -> Void) -> Int {
    guard rank >= 0 && rank < geometry.worldSize else { return 0 }
    let head = atomicWord(mapping.base + geometry.rankHeaderOffset(rank) + R.writeIndex).load(ordering: .acquiring)
    result.writeIndex = head
    var i = cursors[rank]
    if head < i {
      // The ring went backwards: the segment was damaged or recreated; start over.
      i = 0
    }
    let slots = UInt64(geometry.slotCount)
    if head - i > slots {
      result.lost &+= head - slots - i
      i = head - slots
    }
    let ring = mapping.base + geometry.ringOffset(rank)
    let mask = slots - 1
    var accepted = 0
    while i < head {
      let slot = ring + Int(truncatingIfNeeded: (i & mask) &* UInt64(S.size))
      let seq = atomicWord(slot + S.seq)
      let want = 2 &* i &+ 2
      let s1 = seq.load(ordering: .acquiring)
      result.reads &+= 1
      if s1 != want {
        // Overwritten by a later lap (or being overwritten now).
        result.lost &+= 1
        i &+= 1
        continue
      }
      withUnsafeMutableBytes(of: &scratch) { p in
        copyPayload(from: slot + S.payload, to: p.baseAddress.unsafelyUnwrapped)
      }
      atomicMemoryFence(ordering: .acquiring)
      let s2 = seq.load(ordering: .relaxed)
      if s2 != s1 {
        result.lost &+= 1
        result.torn &+= 1
        i &+= 1
        continue
      }
      let decoded = withUnsafeBytes(of: &scratch) { p in
        RecordCodec.decode(p.baseAddress.unsafelyUnwrapped, index: i)
      }
      switch decoded {
      case .record(let rec) where rec.rank != rank:
        // a record that names another rank than its ring's was not written by that rank
        result.corrupt &+= 1
      case .record(let rec):
        accepted += 1
        body(rec)
      case .corrupt:
        result.corrupt &+= 1
      }
      i &+= 1
    }
    cursors[rank] = i
    return accepted
  }

  // MARK: Summary

  /// This job's summary line.
  public func summary() -> JobSummary { summary(ranks: ranks()) }

  /// This job's summary line judged from rank headers the caller has just read (`ranks()`), so a
  /// reader that needs both reads them once.
  public func summary(ranks rs: [RankStatus]) -> JobSummary {
    var e = evidence(rs)
    let stall = StallDiagnosis.judge(rs, threshold: stallThreshold(), frozenThreshold: frozenThreshold())
    e.stall = stall
    let phase = JobPhase.judge(e)
    let now = Double(telemetryRealtimeNanos()) / 1e9
    var stalled: StallDiagnosis?
    if case .stalled = phase { stalled = stall }
    return JobSummary(
      name: name, phase: phase, worldSize: info.worldSize, tp: info.tp, dp: info.dp,
      // the loss is global: rank 0's, or on another node's namespace its first attached rank's
      step: e.lastStep, totalSteps: info.totalSteps, loss: latestLoss(rank: rs.first(where: \.attached)?.rank ?? 0),
      age: max(0, now - info.creationTime), foreign: false, problem: nil, stall: stalled,
      nodes: Self.nodeCount(rs), lostNodes: Self.lostNodes(rs, after: stallThreshold()))
  }

  // MARK: Stalls

  /// Seconds of heartbeat silence after which a rank counts as stalled
  /// (`StallDiagnosis.threshold` of the recent median step time, at least `staleAfter`).
  public func stallThreshold() -> Double {
    StallDiagnosis.threshold(medianStepSeconds: recentMedianStepSeconds(), floor: staleAfter)
  }

  /// Seconds of heartbeat silence after which a running or paused rank counts as stalled even
  /// when no rank waits for it (`StallDiagnosis.judge`): `stallThreshold()` once a step was
  /// timed, else `firstStepAllowance` (the first step's length is unknown).
  public func frozenThreshold() -> Double {
    recentMedianStepSeconds() == nil ? max(stallThreshold(), Self.firstStepAllowance) : stallThreshold()
  }

  /// Heartbeat silence a rank may keep before its first timed step (a big model's first step).
  public static let firstStepAllowance: Double = 60

  /// The rank this job is stuck on, if any (see `StallDiagnosis`): others wait for it, or its
  /// heartbeat stopped while it runs or is paused. Nil unless the phase is stalled.
  public func stallDiagnosis() -> StallDiagnosis? {
    let rs = ranks()
    var e = evidence(rs)
    let stall = StallDiagnosis.judge(rs, threshold: stallThreshold(), frozenThreshold: frozenThreshold())
    e.stall = stall
    if case .stalled = JobPhase.judge(e) { return stall }
    return nil
  }

  /// Median wall time of the newest (up to) 16 steps in world rank 0's ring, seconds; nil before
  /// the first step. Does not move the poll cursor.
  public func recentMedianStepSeconds() -> Double? {
    let saved = cursors[0]
    defer { cursors[0] = saved }
    let head = atomicWord(mapping.base + geometry.rankHeaderOffset(0) + R.writeIndex).load(ordering: .acquiring)
    cursors[0] = head > 32 ? head - 32 : 0
    var times: [UInt64] = []
    var scratchPoll = RankPoll(rank: 0)
    poll(rank: 0, into: &scratchPoll) { rec in if case .step(let s) = rec { times.append(s.stepNs) } }
    guard !times.isEmpty else { return nil }
    let recent = times.suffix(16).sorted()
    return Double(recent[recent.count / 2]) / 1e9
  }

  /// Loss of the newest step record still readable in rank `rank`'s ring (does not move the
  /// poll cursor).
  public func latestLoss(rank: Int) -> Float? { latestStep(rank: rank)?.loss }

  /// The newest step record still readable in rank `rank`'s ring (does not move the cursor).
  public func latestStep(rank: Int) -> StepRecord? {
    guard rank >= 0 && rank < geometry.worldSize else { return nil }
    let saved = cursors[rank]
    defer { cursors[rank] = saved }
    let head = atomicWord(mapping.base + geometry.rankHeaderOffset(rank) + R.writeIndex).load(ordering: .acquiring)
    var back: UInt64 = 8
    while back <= UInt64(geometry.slotCount) {
      cursors[rank] = head > back ? head - back : 0
      var found: StepRecord?
      var scratchPoll = RankPoll(rank: rank)
      poll(rank: rank, into: &scratchPoll) { rec in if case .step(let s) = rec { found = s } }
      if let f = found { return f }
      if head <= back { return nil }
      back *= 8
    }
    return nil
  }

}

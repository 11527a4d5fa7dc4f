// Turns ring records into store rows, with no database in sight: the job-level series (one row
// per step once every rank reported it), per-rank step rows in buckets of `bucketSteps` steps
// (min, mean and max of each field, so a spike survives decimation), events and shard
// statistics. The recorder feeds it and hands its batches to `RunFile`.

import JobSchema
import Telemetry

/// One per-rank step row: a bucket of `steps` consecutive steps of one rank.
public struct RankStepRow: Sendable {
  public var rank: Int
  public var firstStep: Int
  public var lastStep: Int
  public var steps: Int
  public var ringIndex: UInt64
  public var timestampNs: UInt64
  public var wallTime: Double
  /// Per `StepColumns.all`: the exact value (one step) or the mean.
  public var mean: [Double]
  /// Per column, the bucket's minimum and maximum (equal to `mean` for one step).
  public var min: [Double]
  public var max: [Double]
  /// All-reduce latency histogram, summed over the bucket.
  public var histogram: [UInt32]
}

/// One row of the job-level series.
public struct SeriesRow: Sendable, Equatable {
  public var step: Int
  public var timestampNs: UInt64
  public var wallTime: Double
  /// Ranks whose record of this step made the row.
  public var ranks: Int
  /// Per `StoreSchema.seriesColumns`.
  public var values: [Double]
}

/// Rows ready to be written in one transaction.
public struct StoreBatch: Sendable {
  public var series: [SeriesRow] = []
  public var rankSteps: [RankStepRow] = []
  public var events: [(record: EventRecord, wallTime: Double)] = []
  public var shardStats: [TensorStatsRecord] = []
  /// Records the rings overwrote before the recorder read them, since the previous batch.
  public var lost: UInt64 = 0
  public var isEmpty: Bool { series.isEmpty && rankSteps.isEmpty && events.isEmpty && shardStats.isEmpty && lost == 0 }
  public init() {}
}

/// The job-level value of a step from every rank's record: loss, lr and gradient norm are global
/// (rank 0's); tokens are the whole job's (one DP replica's × d); time is the slowest rank's;
/// communication the mean over ranks; memory the largest rank's.
struct PendingStep {
  var ranks = 0
  var first = StepMetrics()
  var maxStepNs: UInt64 = 0
  var commSum: Double = 0
  var commTotalSum: Double = 0
  var memory: [UInt64] = [0, 0, 0, 0, 0]
  var timestampNs: UInt64 = 0
  var arrivedNs: UInt64 = 0

  mutating func add(_ r: StepRecord) {
    if ranks == 0 || r.rank == 0 { first = r.metrics }
    ranks += 1
    maxStepNs = Swift.max(maxStepNs, r.stepNs)
    commSum += Double(r.metrics.commExposedNs)
    commTotalSum += Double(r.metrics.commTotalNs)
    let m = [r.rssBytes, r.paramBytes, r.gradBytes, r.optimizerBytes, r.activationBytes]
    for i in 0..<5 { memory[i] = Swift.max(memory[i], m[i]) }
    timestampNs = Swift.max(timestampNs, r.timestampNs)
  }

  func row(step: Int, dp: Int, wallOffset: Double) -> SeriesRow {
    let tokens = Double(first.tokens * Swift.max(dp, 1))
    let seconds = Double(maxStepNs) / 1e9
    let n = Double(Swift.max(ranks, 1))
    let values: [Double] = [
      Double(first.loss), Double(first.lr), Double(first.gradNorm), tokens, seconds > 0 ? tokens / seconds : 0,
      Double(maxStepNs), commSum / n, commTotalSum / n,
    ] + memory.map(Double.init)
    return SeriesRow(step: step, timestampNs: timestampNs, wallTime: Double(timestampNs) / 1e9 + wallOffset,
                     ranks: ranks, values: values)
  }
}

/// Accumulates one run's records into batches of rows (not thread-safe: the recorder's thread
/// owns it).
public final class RunAccumulator {
  public let world: Int
  public let dp: Int
  /// Steps per per-rank bucket (1: every step kept as it is).
  public let bucketSteps: Int
  /// Seconds to add to a CLOCK_MONOTONIC timestamp to get Unix time.
  public let wallOffset: Double
  /// How long a step may wait for its other ranks before its series row is written with the
  /// ranks it has (a rank that died never reports).
  public var completionTimeoutNs: UInt64 = 2_000_000_000

  private var pending: [Int: PendingStep] = [:]
  private var buckets: [Int: Bucket] = [:]
  private var batch = StoreBatch()
  /// Best (lowest finite) and latest loss of the series rows emitted so far.
  public private(set) var bestLoss: Float?
  public private(set) var finalLoss: Float?
  public private(set) var lastStep = 0

  public init(world: Int, dp: Int, bucketSteps: Int, wallOffset: Double) {
    self.world = Swift.max(world, 1)
    self.dp = dp
    self.bucketSteps = Swift.max(bucketSteps, 1)
    self.wallOffset = wallOffset
  }

  /// The steps per bucket that keep `steps` × `world` per-rank rows within `budgetBytes`
  /// (a power of two; `rowBytes` is the size of a one-step row on disk, 301 bytes measured by
  /// `tptop-dev bench-store`, rounded up; `bucketRowBytes` that of a bucket row, 644 measured).
  public static func bucketSteps(steps: Int, world: Int, budgetBytes: Int, rowBytes: Int = 320, bucketRowBytes: Int = 700) -> Int {
    let series = Double(steps) * 120  // the full-resolution job-level series comes first
    let room = Swift.max(Double(budgetBytes) * 0.9 - series, Double(budgetBytes) * 0.1)
    var k = 1
    // a bucket row also holds every field's min and max: about twice a one-step row
    func bytes(_ k: Int) -> Double { Double(steps) * Double(world) * Double(k == 1 ? rowBytes : bucketRowBytes) / Double(k) }
    while bytes(k) > room && k < 1 << 20 { k *= 2 }
    return k
  }

  /// Adds a step record (any rank, any order within a rank's ring order).
  public func add(_ r: StepRecord, nowNs: UInt64) {
    var p = pending[r.step] ?? PendingStep()
    if p.ranks == 0 { p.arrivedNs = nowNs }
    p.add(r)
    if p.ranks >= world {
      emit(step: r.step, p)
      pending[r.step] = nil
    } else {
      pending[r.step] = p
    }
    let start = (Swift.max(r.step, 1) - 1) / bucketSteps * bucketSteps + 1
    if var b = buckets[r.rank], b.firstStep == start {
      b.add(r)
      buckets[r.rank] = b
    } else {
      if let old = buckets[r.rank] { batch.rankSteps.append(old.row(wallOffset)) }
      buckets[r.rank] = Bucket(r, firstStep: start)
    }
  }

  /// Adds an event record.
  public func add(_ e: EventRecord) { batch.events.append((e, Double(e.timestampNs) / 1e9 + wallOffset)) }

  /// Adds a shard-statistics record.
  public func add(_ t: TensorStatsRecord) { batch.shardStats.append(t) }

  /// Counts records the rings overwrote unread.
  public func addLost(_ n: UInt64) { batch.lost &+= n }

  private func emit(step: Int, _ p: PendingStep) {
    let row = p.row(step: step, dp: dp, wallOffset: wallOffset)
    batch.series.append(row)
    let loss = p.first.loss
    if step >= lastStep { lastStep = step; finalLoss = loss }
    if loss.isFinite, loss < (bestLoss ?? .infinity) { bestLoss = loss }
  }

  /// The rows gathered since the previous call: complete steps, steps that waited longer than
  /// `completionTimeoutNs` (every pending step when `final`), and every open per-rank bucket
  /// as it stands (written again, replaced, as it fills).
  public func takeBatch(nowNs: UInt64, final: Bool = false) -> StoreBatch {
    for (step, p) in pending.sorted(by: { $0.key < $1.key }) where final || nowNs &- p.arrivedNs > completionTimeoutNs {
      emit(step: step, p)
      pending[step] = nil
    }
    for (rank, b) in buckets.sorted(by: { $0.key < $1.key }) where b.dirty {
      batch.rankSteps.append(b.row(wallOffset))
      buckets[rank]?.dirty = false
    }
    defer { batch = StoreBatch() }
    return batch
  }
}

/// One rank's open bucket.
struct Bucket {
  var rank: Int
  var firstStep: Int
  var lastStep: Int
  var count = 0
  var ringIndex: UInt64
  var timestampNs: UInt64 = 0
  var sum: [Double]
  var min: [Double]
  var max: [Double]
  var histogram = [UInt32](repeating: 0, count: LatencyHistogram.bucketCount)
  var dirty = true

  init(_ r: StepRecord, firstStep: Int) {
    rank = r.rank
    self.firstStep = firstStep
    lastStep = r.step
    ringIndex = r.index
    let n = StepColumns.all.count
    sum = [Double](repeating: 0, count: n)
    min = [Double](repeating: .infinity, count: n)
    max = [Double](repeating: -.infinity, count: n)
    add(r)
  }

  mutating func add(_ r: StepRecord) {
    count += 1
    lastStep = Swift.max(lastStep, r.step)
    timestampNs = r.timestampNs
    let metrics = r.metrics
    for (i, read) in StepColumns.readers.enumerated() {
      let v = read(metrics)
      sum[i] += v
      if v < min[i] { min[i] = v }
      if v > max[i] { max[i] = v }
    }
    for i in 0..<LatencyHistogram.bucketCount { histogram[i] &+= r.allReduceHistogram[i] }
    dirty = true
  }

  func row(_ wallOffset: Double) -> RankStepRow {
    RankStepRow(rank: rank, firstStep: firstStep, lastStep: lastStep, steps: count, ringIndex: ringIndex,
                timestampNs: timestampNs, wallTime: Double(timestampNs) / 1e9 + wallOffset,
                mean: sum.map { $0 / Double(count) }, min: min, max: max, histogram: histogram)
  }
}

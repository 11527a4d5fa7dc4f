import Glibc
import Telemetry
import JobSchema

/// A job without MPI or a model: one process writes plausible records for every rank. For
/// tests, benchmarks and dashboard demos.
///
///     let job = try SyntheticJob(job: "demo", worldSize: 16, tp: 4)
///     job.advance(steps: 100)
///     job.finish()
///     try job.remove()
public final class SyntheticJob {
  /// The segment.
  public let writer: SegmentWriter
  /// One writer per world rank.
  public let rankWriters: [RankWriter]
  /// Last step written.
  public private(set) var step = 0
  public let description: JobDescription
  /// The namespace its segment is in.
  public let space: SegmentSpace

  /// Creates the segment of a synthetic job with `worldSize` ranks (`tp` must divide it) and
  /// a GPT-2-like shard layout; every rank starts in `.running`.
  public init(
    job: String, in space: SegmentSpace = .default, worldSize: Int = 16, tp: Int = 4,
    slotCount: Int = SegmentLayout.defaultSlotCount, totalSteps: Int = 1000
  ) throws {
    self.space = space
    guard tp >= 1 && worldSize >= tp && worldSize % tp == 0 else {
      throw TelemetryError.invalidArgument("t \(tp) must divide the world size \(worldSize)")
    }
    let model = ModelShape(
      layers: 4, heads: 4 * tp, channels: 64 * tp, vocab: 50257, paddedVocab: (50257 + 64 * tp - 1) / (64 * tp) * (64 * tp),
      maxSeq: 256, batch: 4, seq: 64)
    description = JobDescription(
      name: job, model: model, preset: "synthetic", worldSize: worldSize, tp: tp, dp: worldSize / tp, totalSteps: totalSteps,
      shards: ShardedTensor.gpt2Layout(model, tp: tp))
    writer = try SegmentWriter.create(description, in: space, slotCount: slotCount)
    var ws: [RankWriter] = []
    for r in 0..<worldSize {
      let w = try writer.rankWriter(worldRank: r, localRank: r)
      w.setState(.running)
      ws.append(w)
    }
    rankWriters = ws
  }

  /// Writes `steps` steps: one step record per rank per step, with a falling loss, rank-skewed
  /// timings and a heartbeat.
  public func advance(steps: Int = 1) {
    for _ in 0..<max(steps, 0) {
      step += 1
      let now = telemetryMonotonicNanos()
      for w in rankWriters {
        var r = Self.plausibleRecord(step: step, rank: w.worldRank, model: description.model)
        r.timestampNs = now
        w.writeStep(r)
        w.heartbeat(nowNs: now)
      }
    }
  }

  /// Writes one event on every rank.
  public func event(_ kind: EventKind, text: String = "") {
    for w in rankWriters { w.writeEvent(kind, step: step, text: text) }
  }

  /// Sets every rank's state.
  public func setState(_ s: RunState) { for w in rankWriters { w.setState(s) } }

  /// Marks every rank finished (or failed).
  public func finish(failed: Bool = false) { setState(failed ? .failed : .finished) }

  /// Removes the segment.
  public func remove() throws { try SegmentWriter.remove(job: description.name, in: space) }

  /// A step record with plausible values for `step` on `rank`.
  public static func plausibleRecord(step: Int, rank: Int, model: ModelShape) -> StepRecord {
    var r = StepRecord()
    r.step = step
    r.rank = rank
    let s = Float(step)
    r.loss = 10.8 * expf(-s / 400) + 3.2 + 0.05 * sinf(s * 0.7)
    r.lr = 6e-4 * min(1, s / 50)
    r.gradNorm = 1.5 * expf(-s / 300) + 0.4
    r.tokens = model.batch * model.seq
    let skew = UInt64(rank % 5) * 2_000_000
    r.forwardNs = 40_000_000 + skew
    r.backwardNs = 80_000_000 + skew
    r.optimizerNs = 6_000_000
    r.dataNs = 300_000
    r.commNs = 12_000_000 + UInt64(rank % 3) * 1_000_000
    r.stepNs = r.forwardNs + r.backwardNs + r.optimizerNs + r.dataNs
    r.allReduceCount = 4 * model.layers + 2
    r.allReduceBytes = UInt64(r.allReduceCount * model.batch * model.seq * model.channels * 4)
    r.allReduceTotalNs = r.commNs
    r.allReduceMaxNs = r.commNs / UInt64(max(r.allReduceCount, 1)) * 3
    r.allReduceHistogram[7] = UInt32(r.allReduceCount / 2)
    r.allReduceHistogram[8] = UInt32(r.allReduceCount - r.allReduceCount / 2)
    r.rssBytes = 300_000_000 + UInt64(rank) * 1_000_000
    r.paramBytes = 50_000_000
    r.gradBytes = 50_000_000
    r.optimizerBytes = 100_000_000
    r.activationBytes = 80_000_000
    r.computeBusy = 0.85 - Float(rank % 4) * 0.02
    r.gflops = 20 + Float(rank % 4)
    return r
  }
}

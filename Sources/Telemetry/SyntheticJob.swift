import Glibc
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

  /// Creates the segment of a synthetic job with `worldSize` ranks (`tp` must divide it) and
  /// a GPT-2-like shard layout; every rank starts in `.running`.
  public init(
    job: String, worldSize: Int = 16, tp: Int = 4, slotCount: Int = SegmentLayout.defaultSlotCount,
    totalSteps: Int = 1000
  ) throws {
    guard tp >= 1 && worldSize >= tp && worldSize % tp == 0 else {
      throw TelemetryError.invalidArgument("t \(tp) must divide the world size \(worldSize)")
    }
    let model = ModelShape(
      layers: 4, heads: 4 * tp, channels: 64 * tp, vocab: 50257, paddedVocab: (50257 + 64 * tp - 1) / (64 * tp) * (64 * tp),
      maxSeq: 256, batch: 4, seq: 64)
    description = JobDescription(
      name: job, model: model, preset: "synthetic", worldSize: worldSize, tp: tp, dp: worldSize / tp, totalSteps: totalSteps,
      shards: Self.gpt2Shards(model: model, tp: tp))
    writer = try SegmentWriter.create(description, slotCount: slotCount)
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
  public func remove() throws { try SegmentWriter.remove(job: description.name) }

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

  /// A GPT-2 (llm.c order) shard layout for `model` split `tp` ways, as the engine publishes it.
  public static func gpt2Shards(model: ModelShape, tp: Int) -> [ShardedTensor] {
    let L = model.layers, C = model.channels, Vp = model.paddedVocab, T = model.maxSeq
    let H = model.heads
    func whole(_ name: String, _ shape: [Int]) -> ShardedTensor {
      ShardedTensor(
        name: name, shape: shape, split: .replicated, splitDim: nil,
        ranks: Array(repeating: [], count: tp), rankDescriptions: Array(repeating: "whole tensor", count: tp))
    }
    func even(_ name: String, _ shape: [Int], _ kind: SplitKind, dim: Int, parts: Int = 1, unit: String) -> ShardedTensor {
      let n = shape[dim] / parts
      let per = n / tp
      var ranks: [[Range<Int>]] = []
      var descs: [String] = []
      for r in 0..<tp {
        ranks.append((0..<parts).map { k in (k * n + r * per)..<(k * n + (r + 1) * per) })
        if unit == "heads" {
          let hp = H / tp
          descs.append("heads \(r * hp)–\(r * hp + hp - 1) of \(H)")
        } else {
          descs.append("\(unit) \(r * per)–\(r * per + per - 1) of \(n)")
        }
      }
      return ShardedTensor(name: name, shape: shape, split: kind, splitDim: dim, ranks: ranks, rankDescriptions: descs)
    }
    return [
      even("wte", [Vp, C], .vocab, dim: 0, unit: "vocab rows"),
      whole("wpe", [T, C]),
      whole("ln1w", [L, C]), whole("ln1b", [L, C]),
      even("qkvw", [L, 3 * C, C], .column, dim: 1, parts: 3, unit: "heads"),
      even("qkvb", [L, 3 * C], .column, dim: 1, parts: 3, unit: "heads"),
      even("attprojw", [L, C, C], .row, dim: 2, unit: "heads"),
      whole("attprojb", [L, C]),
      whole("ln2w", [L, C]), whole("ln2b", [L, C]),
      even("fcw", [L, 4 * C, C], .column, dim: 1, unit: "hidden"),
      even("fcb", [L, 4 * C], .column, dim: 1, unit: "hidden"),
      even("fcprojw", [L, C, 4 * C], .row, dim: 2, unit: "hidden"),
      whole("fcprojb", [L, C]),
      whole("lnfw", [C]), whole("lnfb", [C]),
    ]
  }
}

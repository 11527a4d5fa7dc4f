import Dashboard
import Foundation
import JobSchema
import Telemetry

// A job source that invents a plausible job, for the dashboard's tests. Steps advance with (virtual) time.

/// A synthetic tensor-parallel job.
final class SyntheticSource: JobSource {
  let job: JobSpec
  private var desired: DesiredState = .run
  private var step = 0
  private var pending: [JobEvent] = []
  private var states: [RunState]
  private let stepsPerPoll: Int
  private var clock: Double

  /// Creates a job of `tp × dp` ranks with GPT-2-small-like tensors. `stepsPerPoll` steps are
  /// produced by each `poll()` while running.
  init(name: String = "synthetic", tp: Int = 2, dp: Int = 1, layers: Int = 6, heads: Int = 6,
              channels: Int = 384, vocab: Int = 65, totalSteps: Int = 5000, stepsPerPoll: Int = 1,
              logPath: String? = nil) {
    self.job = JobSpec(name: name, model: "small (L\(layers) H\(heads) C\(channels))", tp: tp, dp: dp,
                              totalSteps: totalSteps,
                              tensors: SyntheticSource.layout(tp: tp, layers: layers, heads: heads, channels: channels, vocab: vocab),
                              logPath: logPath)
    states = Array(repeating: .running, count: tp * dp)
    self.stepsPerPoll = stepsPerPoll
    clock = 1_764_000_000
  }

  /// The engine's layout of a GPT-2 with `layers`, `heads`, `channels` over `tp` ranks.
  static func layout(tp: Int, layers L: Int, heads H: Int, channels C: Int, vocab V: Int) -> [ShardedTensor] {
    ShardedTensor.gpt2Layout(layers: L, heads: H, channels: C, paddedVocab: V, maxSeq: 1024, tp: tp)
  }


  /// Produces the samples of one step for rank `r`.
  func sample(rank r: Int, step: Int) -> StepSample {
    var s = StepSample()
    s.step = step
    let x = Double(step)
    s.loss = Float(1.6 + 2.6 * exp(-x / 300) + 0.05 * sin(x * 0.37))
    s.lr = 3e-4
    s.gradNorm = Float(1 + exp(-x / 200))
    s.tokens = 4 * 64
    let slow = r == job.worldSize - 1 ? 1.15 : 1.0
    let base = (40e6 + 4e6 * sin(x * 0.1 + Double(r))) * slow
    s.forwardNs = UInt64(base * 0.35)
    s.backwardNs = UInt64(base * 0.5)
    s.commNs = UInt64(base * 0.12)
    // the faster ranks wait in their collectives for the slow one
    s.commPeerWaitMicros = UInt32(base * (slow > 1 ? 0.005 : 0.09) / 1000)
    s.optimizerNs = UInt64(base * 0.08)
    s.dataNs = UInt64(base * 0.02)
    s.stepNs = UInt64(base)
    s.allReduceCount = 4 * 6
    s.allReduceBytes = 24 * 64 * 384 * 4
    let lat = 150_000.0 * (1 + 0.5 * sin(x * 0.2 + Double(r) * 0.7)) * (step % 37 == 0 ? 8 : 1)
    s.allReduceTotalNs = UInt64(lat * 24)
    s.allReduceMaxNs = UInt64(lat * 2.5)
    var h = LatencyHistogram()
    let b = min(15, max(0, Int(log2(lat / 1000))))
    h[b] = 16
    h[max(0, b - 1)] = 4
    h[min(15, b + 1)] = 3
    h[min(15, b + 2)] = 1
    s.allReduceHistogram = h
    s.paramBytes = 24 << 20
    s.gradBytes = 24 << 20
    s.optimizerBytes = 48 << 20
    s.activationBytes = 60 << 20
    s.rssBytes = (200 << 20) + UInt64(r) << 20
    s.computeBusy = Float(0.8 - 0.1 * sin(x * 0.05 + Double(r)) - (slow > 1 ? 0.1 : 0))
    s.gflops = 12.5
    s.wallTime = clock
    return s
  }

  func poll() -> SourcePoll {
    var p = SourcePoll()
    let n = job.worldSize
    p.steps = Array(repeating: [], count: n)
    p.lost = Array(repeating: 0, count: n)
    if desired == .run && states[0] != .finished {
      if states[0] == .paused {
        pending.append(JobEvent(kind: .resumed, rank: 0, step: step, wallTime: clock, text: "resumed at step \(step)"))
      }
      for _ in 0..<stepsPerPoll where step < job.totalSteps {
        step += 1
        clock += 0.05
        for r in 0..<n { p.steps[r].append(sample(rank: r, step: step)) }
        if step % 500 == 0 {
          pending.append(JobEvent(kind: .checkpointSaved, rank: 0, step: step, wallTime: clock, text: "checkpoint saved: runs/ckpt_\(step).bin"))
        }
      }
      states = Array(repeating: step >= job.totalSteps ? .finished : .running, count: n)
    } else if desired == .pause && states[0] == .running {
      states = Array(repeating: .paused, count: n)
      pending.append(JobEvent(kind: .paused, rank: 0, step: step, wallTime: clock, text: "paused at step \(step)"))
    } else if desired == .stop && states[0] != .finished {
      states = Array(repeating: .finished, count: n)
      pending.append(JobEvent(kind: .stopped, rank: 0, step: step, wallTime: clock, text: "stopped at step \(step)"))
    }
    p.ranks = (0..<n).map { RankHealth(rank: $0, pid: 4100 + $0, host: "node\($0 / 8)", state: states[$0], heartbeatAge: 0.2) }
    p.events = pending
    pending = []
    p.desired = desired
    return p
  }

  func setDesired(_ state: DesiredState) throws { desired = state }

  func requestCheckpoint() throws {
    pending.append(JobEvent(kind: .checkpointSaved, rank: 0, step: step, wallTime: clock, text: "checkpoint saved: runs/ckpt_\(step).bin"))
  }
}

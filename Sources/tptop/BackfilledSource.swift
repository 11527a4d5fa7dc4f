// A live job attached late: its rings hold only the last `slots` steps of each rank, so the
// dashboard's history would start there. Its run store (the recorder has every step) fills in
// the steps before: the first poll gets, per rank, the stored run's means of windows of steps
// before the ring's oldest record, then the ring's newest records; later polls are the live
// source's own.

import Dashboard
import Foundation
import JobSchema
import RunStore
import Telemetry

/// A live source whose first poll is backfilled from the job's stored run.
final class BackfilledSource: JobSource {
  let live: TelemetrySource
  let run: StoredRun
  private var first = true

  init(live: TelemetrySource, run: StoredRun) {
    self.live = live
    self.run = run
  }

  /// The live job, with what only its stored run knows (where it writes its checkpoints).
  var job: JobSpec {
    var spec = live.job
    spec.checkpointDirectory = checkpointDirectory
    return spec
  }
  private lazy var checkpointDirectory: String? = run.header.settings["checkpoint-dir"]

  func poll() -> SourcePoll {
    var p = live.poll()
    guard first else { return p }
    first = false
    let keep = JobHistory.samplesPerRank / 2
    // per rank, the ring's oldest step: what the store fills in before
    let oldest = p.steps.map { $0.first?.step ?? Int.max }
    guard let latest = oldest.filter({ $0 != Int.max }).max(), latest > 1 else { return p }
    var earlier = [[StepSample]](repeating: [], count: p.steps.count)
    let window = max(1, (latest - 1 + keep - 1) / keep)
    try? run.rankStepMeans(window: window) { s, wallTime in
      // whole windows that end before the ring's oldest step
      guard s.rank >= 0, s.rank < earlier.count, s.step < oldest[s.rank] else { return }
      var sample = StepSample()
      sample.metrics = s.metrics
      sample.wallTime = wallTime
      earlier[s.rank].append(sample)
    }
    for r in p.steps.indices where !earlier[r].isEmpty {
      p.steps[r] = earlier[r].suffix(keep) + p.steps[r].suffix(JobHistory.samplesPerRank - min(keep, earlier[r].count))
    }
    return p
  }

  func setDesired(_ state: DesiredState) throws { try live.setDesired(state) }
  func requestCheckpoint() throws { try live.requestCheckpoint() }
}

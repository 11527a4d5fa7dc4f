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

  /// The stored run of live job `job`, if it is being recorded: the run its recorder writes
  /// (`<base>`, or `<base>-<k>` after a name clash; an incarnation's run is its base's) whose
  /// header names this job and is still live.
  static func storedRun(ofJob job: String, location: StoreLocation = .fromEnvironment()) -> StoredRun? {
    candidateRuns(ofJob: job, location: location).first { $0.header.job == job && $0.header.isLive }
  }

  /// The stored run an ended job's segment belongs to: a run of the job's base name (or
  /// `<base>-<k>`) recorded by one of its incarnations, alive when the segment was created
  /// (`createdAt`, seconds since the epoch; its recorder starts moments after). The latest
  /// such run when several are.
  static func storedRun(ofEndedJob job: String, createdAt: Double, location: StoreLocation = .fromEnvironment()) -> StoredRun? {
    let base = IncarnationName.parse(job).base
    return candidateRuns(ofJob: job, location: location)
      .filter { r in
        IncarnationName.parse(r.header.job).base == base && r.header.started <= createdAt + 60
          && (r.header.ended ?? .infinity) >= createdAt
      }
      .max { $0.header.started < $1.header.started }
  }

  /// Stored runs named after `job`'s base name: `<base>` and `<base>-<k>`.
  private static func candidateRuns(ofJob job: String, location: StoreLocation) -> [StoredRun] {
    let base = IncarnationName.parse(job).base
    let names = location.runNames().filter { $0 == base || ($0.hasPrefix(base + "-") && Int($0.dropFirst(base.count + 1)) != nil) }
    return names.compactMap { try? StoredRun(location: location, name: $0) }
  }

  var job: JobSpec { live.job }

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

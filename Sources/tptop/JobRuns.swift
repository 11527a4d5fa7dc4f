// Which stored run a job's segment belongs to: a live job's, for the dashboard's backfill, and an
// ended job's, for export.

import JobSchema
import RunStore

/// The stored runs of jobs by their segments' names.
enum JobRuns {
  /// The stored run of live job `job`, if it is being recorded: the run its recorder writes
  /// (`<base>`, or `<base>-<k>` after a name clash; an incarnation's run is its base's) whose
  /// header names this job and is still live.
  static func live(_ job: String, location: StoreLocation = .fromEnvironment()) -> StoredRun? {
    candidateRuns(ofJob: job, location: location).first { $0.header.job == job && $0.header.isLive }
  }

  /// The stored run an ended job's segment belongs to: a run of the job's base name (or
  /// `<base>-<k>`) recorded by one of its incarnations, alive when the segment was created
  /// (`createdAt`, seconds since the epoch; its recorder starts moments after). The latest
  /// such run when several are.
  static func ended(_ job: String, createdAt: Double, location: StoreLocation = .fromEnvironment()) -> StoredRun? {
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
}

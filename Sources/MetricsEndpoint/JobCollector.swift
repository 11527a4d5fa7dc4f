// Collection: what one job's segment holds now, read without waiting for (or slowing) its
// writers. Each collection reads only the records published since the previous one, so its work
// and memory follow the ranks and the time between collections, never the job's history.

import Glibc
import JobSchema
import Telemetry

/// One rank as one collection saw it.
struct RankSample {
  /// The rank's header.
  var status: RankStatus
  /// The newest step record read so far (kept from earlier collections), nil before the first.
  var latest: StepRecord?
  /// Records lost to ring overrun or found corrupt since the previous collection.
  var newLost: UInt64 = 0
  /// The bucket-wise sum of the all-reduce histograms of the step records read this collection.
  var newLatencies = LatencyHistogram()
}

/// One job as one collection saw it.
struct JobSample {
  var info: JobInfo
  /// The job's state, `stalled` when a rank holds the others up.
  var state: MetricFamilies.JobStateLabel
  /// Nodes the attached ranks run on, and how many of them stopped reporting.
  var nodes: Int
  var lostNodes: Int
  /// Every world rank, attached or not.
  var ranks: [RankSample]
}

/// Reads one job's segment, collection after collection. Not thread-safe (one `JobReader`).
final class JobCollector {
  let reader: JobReader
  /// The segment's inode at attach: a job recreated under the same name is a new collector.
  let inode: UInt64
  private var latest: [StepRecord?]

  /// Attaches to job `job` of namespace `space`.
  /// - Throws: `TelemetryError` when the segment cannot be read.
  init(job: String, in space: SegmentSpace) throws {
    reader = try JobReader(job: job, in: space)
    inode = segmentInode(job: job, in: space) ?? 0
    latest = Array(repeating: nil, count: reader.info.worldSize)
  }

  /// The job now: headers, judged state, and the records published since the last collection.
  func collect() -> JobSample {
    let statuses = reader.ranks()
    let summary = reader.summary(ranks: statuses)
    var ranks: [RankSample] = []
    ranks.reserveCapacity(statuses.count)
    for status in statuses {
      let r = status.rank
      var sample = RankSample(status: status, latest: latest[r])
      var counts = RankPoll(rank: r)
      var newest = latest[r]
      var latencies = LatencyHistogram()
      reader.poll(rank: r, into: &counts) { record in
        guard case .step(let s) = record else { return }
        latencies = latencies + s.allReduceHistogram
        if s.step >= newest?.step ?? Int.min { newest = s }
      }
      latest[r] = newest
      sample.latest = newest
      sample.newLost = counts.lost &+ counts.corrupt
      sample.newLatencies = latencies
      ranks.append(sample)
    }
    return JobSample(
      info: reader.info, state: Self.stateLabel(summary), nodes: summary.nodes, lostNodes: summary.lostNodes.count,
      ranks: ranks)
  }

  /// The phase's word (`JobPhase.Word`); `stale` for a segment that cannot be read.
  static func stateLabel(_ s: JobSummary) -> MetricFamilies.JobStateLabel { s.phase?.word ?? .stale }
}

/// The inode of job `job`'s segment in /dev/shm, nil when it is gone.
func segmentInode(job: String, in space: SegmentSpace) -> UInt64? { segmentFile(job: job, in: space)?.inode }

/// The inode and size of job `job`'s segment in /dev/shm, nil when it is gone.
func segmentFile(job: String, in space: SegmentSpace) -> (inode: UInt64, size: Int)? {
  var st = stat()
  guard stat(space.path(job: job), &st) == 0 else { return nil }
  return (UInt64(st.st_ino), Int(st.st_size))
}

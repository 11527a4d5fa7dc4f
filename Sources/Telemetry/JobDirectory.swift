// The jobs on this machine: the segments in /dev/shm of a namespace, listed,
// summarized, followed across a supervisor's restarts, and collected when their jobs are gone;
// and the process checks those judgements rest on.

import Atomics
import Glibc
import JobSchema

/// The tptop segments of this machine, one namespace at a time, as jobs.
public enum JobDirectory {
  /// The live incarnation of supervised job `base` (`tptop supervise` names incarnation k
  /// `<base>.r<k>`, or `<base>.r<k>.<hex>` when that name was taken): of this user's readable
  /// segments so named whose job is not over, the latest incarnation's name; nil when none.
  public static func liveIncarnation(of base: String, in space: SegmentSpace) -> String? {
    var best: (k: Int, job: String)?
    for job in space.allJobs() {
      guard let k = IncarnationName.incarnation(of: job, base: base),
            let r = try? JobReader(job: job, in: space, requireDescription: false) else { continue }
      guard !r.phase().isTerminal else { continue }
      if best.map({ k > $0.k }) ?? true { best = (k, job) }
    }
    return best?.job
  }

  /// Every tptop segment of namespace `space` in /dev/shm, summarized. Never throws: a segment
  /// that cannot be attached is listed with `problem` set.
  public static func list(in space: SegmentSpace, staleAfter: Double = 5) -> [JobSummary] {
    space.allJobs().map { summary(job: $0, in: space, staleAfter: staleAfter) }
  }

  /// One job's summary (see `list()`).
  public static func summary(job: String, in space: SegmentSpace, staleAfter: Double = 5) -> JobSummary {
    do {
      let r = try JobReader(job: job, in: space)
      r.staleAfter = staleAfter
      return r.summary()
    } catch let e as TelemetryError {
      var foreign = false
      if case .foreignOwner = e { foreign = true }
      return JobSummary(
        name: job, phase: nil, worldSize: 0, tp: 0, dp: 0, step: 0, totalSteps: 0, loss: nil,
        age: segmentAge(job: job, in: space), foreign: foreign, problem: e.description)
    } catch {
      return JobSummary(
        name: job, phase: nil, worldSize: 0, tp: 0, dp: 0, step: 0, totalSteps: 0, loss: nil,
        age: segmentAge(job: job, in: space), foreign: false, problem: "\(error)")
    }
  }

  static func segmentAge(job: String, in space: SegmentSpace) -> Double {
    var st = stat()
    guard stat(space.path(job: job), &st) == 0 else { return 0 }
    let now = Double(telemetryRealtimeNanos()) / 1e9
    return max(0, now - Double(st.st_mtim.tv_sec))
  }

  /// Removes the segments of jobs that are gone: stale jobs, finished or failed jobs whose
  /// processes have all exited, and segments that can never be read (truncated, or abandoned
  /// before they were ready). Segments of other users and foreign files are kept.
  /// - Returns: the names removed.
  @discardableResult
  /// - Parameter only: when non-empty, consider only these job names.
  public static func collectGarbage(in space: SegmentSpace, dryRun: Bool = false, staleAfter: Double = 5, only: [String] = []) -> [String] {
    var removed: [String] = []
    for job in space.allJobs() where only.isEmpty || only.contains(job) {
      let r: JobReader
      do {
        // a damaged job description does not hide whether the job's processes are gone
        r = try JobReader(job: job, in: space, requireDescription: false)
      } catch let e as TelemetryError {
        // segments no job can ever use again: creation abandoned half-way, or cut short, or
        // corrupt with no process left mapping them
        switch e {
        case .abandoned, .truncated:
          if dryRun || (try? SegmentWriter.remove(job: job, in: space)) != nil { removed.append(job) }
        case .corrupt where !segmentMapped(path: space.path(job: job)):
          if dryRun || (try? SegmentWriter.remove(job: job, in: space)) != nil { removed.append(job) }
        default: break
        }
        continue
      } catch { continue }
      r.staleAfter = staleAfter
      let rs = r.ranks()
      let st = JobPhase.judge(r.evidence(rs))
      let allGone = rs.allSatisfy { !$0.pidAlive } && !processAlive(r.info.creatorPid)
      let gone = st == .stale || (st.isTerminal && allGone)
      if gone {
        if dryRun || (try? SegmentWriter.remove(job: job, in: space)) != nil { removed.append(job) }
      }
    }
    return removed
  }
}

/// Whether any process maps the segment at `path` (scans /proc/<pid>/maps): the liveness test for
/// a segment whose header is too damaged to name its processes.
func segmentMapped(path: String) -> Bool {
  guard let proc = opendir("/proc") else { return false }
  defer { closedir(proc) }
  var line: UnsafeMutablePointer<CChar>? = nil
  var capacity = 0
  defer { free(line) }
  while let entry = readdir(proc) {
    let pid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    guard pid.first?.isNumber == true, let maps = fopen("/proc/\(pid)/maps", "r") else { continue }
    defer { fclose(maps) }
    while getline(&line, &capacity, maps) > 0 {
      let text = String(cString: line!)
      if text.hasSuffix(path + "\n") || text.hasSuffix(path + " (deleted)\n") { return true }
    }
  }
  return false
}

/// Whether process `pid` exists (`kill(pid, 0)` succeeds or fails with EPERM) and is not a zombie:
/// a killed rank that mpirun has not reaped yet runs no more and must count as gone.
public func processAlive(_ pid: Int32) -> Bool {
  guard pid > 0 else { return false }
  guard kill(pid, 0) == 0 || errno == EPERM else { return false }
  return processState(pid) != "Z"
}

/// The state letter of `/proc/<pid>/stat` (R, S, D, T, Z, ...), nil when it cannot be read.
func processState(_ pid: Int32) -> Character? {
  guard let f = fopen("/proc/\(pid)/stat", "r") else { return nil }
  defer { fclose(f) }
  var buffer = [UInt8](repeating: 0, count: 512)
  let n = fread(&buffer, 1, buffer.count, f)
  // "pid (comm) S ...": comm may hold spaces and parentheses, so look after the last ')'
  guard let close = buffer[..<n].lastIndex(of: UInt8(ascii: ")")), close + 2 < n else { return nil }
  return Character(Unicode.Scalar(buffer[close + 2]))
}

// The reader API is documented stable (docs/TELEMETRY.md): the machine-wide calls keep their

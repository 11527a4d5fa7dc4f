// Attaching to a job this process started (JobControl's `Launcher`): wait for its telemetry
// segment, and show its log's tail when it ends first.

import Foundation
import JobControl
import Telemetry

extension LaunchedJob {
  /// The last `n` lines of the log.
  public func logTail(_ n: Int = 15) -> String {
    let t = LogTail(path: logPath, capacity: n)
    t.update()
    return t.lines.suffix(n).joined(separator: "\n")
  }
}

extension Launcher {
  /// Waits until the job's segment can be attached. Fails if mpirun exits first or `timeout`
  /// seconds pass.
  public static func waitForSegment(_ job: LaunchedJob, timeout: Double = 120,
                                    progress: (String) -> Void = { _ in }) throws -> TelemetrySource {
    let start = monotonicSeconds()
    var lastError = ""
    var announced = false
    while monotonicSeconds() - start < timeout {
      do {
        let s = try TelemetrySource(job: job.job, in: job.space, logPath: job.logPath)
        s.launcherStatus = { [job] in job.exitStatus() }
        return s
      } catch {
        lastError = "\(error)"
      }
      if let st = job.exitStatus() {
        throw ControlError("the job exited with status \(st) before publishing telemetry; log \(job.logPath):\n\(job.logTail())")
      }
      if !announced && monotonicSeconds() - start > 2 {
        progress("waiting for job \(job.job) to start (log: \(job.logPath))...")
        announced = true
      }
      sleepSeconds(0.1)
    }
    throw ControlError("job \(job.job) published no telemetry within \(Int(timeout)) s (\(lastError)); it is still running as pid \(job.pid); log: \(job.logPath)")
  }
}

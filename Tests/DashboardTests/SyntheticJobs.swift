import Telemetry
import XCTest
import TelemetryFixtures

@testable import Dashboard

extension XCTestCase {
  /// A synthetic job `name` (a real segment, written in-process) that has run `steps` steps; its
  /// segment is removed when the test ends.
  func syntheticJob(_ name: String, worldSize: Int = 2, tp: Int = 2, totalSteps: Int = 100,
                    steps: Int) throws -> SyntheticJob {
    let job = try SyntheticJob(job: name, worldSize: worldSize, tp: tp, totalSteps: totalSteps)
    addTeardownBlock { try? job.remove() }
    job.advance(steps: steps)
    return job
  }

  /// A dashboard source on job `name` and a history holding everything it has published so far.
  func attachedHistory(_ name: String) throws -> (TelemetrySource, JobHistory) {
    let src = try TelemetrySource(job: name, in: .default, logPath: nil)
    let h = JobHistory(job: src.job)
    h.ingest(src.poll())
    return (src, h)
  }
}

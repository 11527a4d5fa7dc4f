import XCTest
import Telemetry
@testable import Dashboard

/// The adapter from a real segment (written by Telemetry's synthetic job) to the dashboard model.
final class TelemetryAdapterTests: XCTestCase {
  func testSyntheticSegmentReachesTheViews() throws {
    let name = "dash-unit-\(getpid())"
    let job = try syntheticJob(name, worldSize: 4, steps: 30)
    let (src, h) = try attachedHistory(name)
    XCTAssertEqual(src.job.worldSize, 4)
    XCTAssertEqual(src.job.tp, 2)
    XCTAssertFalse(src.job.tensors.isEmpty)
    XCTAssertEqual(h.samples.map(\.count), [30, 30, 30, 30])
    XCTAssertEqual(h.ranks.map(\.state), Array(repeating: .running, count: 4))
    XCTAssertEqual(h.latestStep, 30)

    try src.setDesired(.pause)
    h.ingest(src.poll())
    XCTAssertEqual(h.desired, .pause)
    job.event(.paused)
    job.setState(.paused)
    h.ingest(src.poll())
    // Reported by every rank, shown once, saying so.
    XCTAssertEqual(h.events.count, 1)
    XCTAssertEqual(h.events[0].ranks.sorted(), Array(0..<src.job.worldSize))
    XCTAssertEqual(h.events[0].reporters(world: src.job.worldSize), "all")
    let model = DashboardModel(history: h, state: AppState(), themeName: "default")
    XCTAssertEqual(model.header.state, "paused")
    try src.requestCheckpoint()
    let g = Renderer.render(model, width: 120, height: 40)
    XCTAssertTrue(g.text.contains(name))
    try src.setDesired(.run)
    job.setState(.running)
    h.ingest(src.poll())
    XCTAssertEqual(DashboardModel(history: h, state: AppState(), themeName: "").header.state, "running")

    // asked to stop at step 30 of 100: the header says stopped, not finished
    try src.setDesired(.stop)
    job.event(.stopped)
    job.finish()
    h.ingest(src.poll())
    let stopped = DashboardModel(history: h, state: AppState(), themeName: "")
    XCTAssertEqual(stopped.header.state, "stopped")
    XCTAssertTrue(Renderer.render(stopped, width: 120, height: 40).text.contains("● stopped"))
  }

  func testJobThatRanItsLastStepIsFinished() throws {
    let name = "dash-unit-done-\(getpid())"
    let job = try syntheticJob(name, totalSteps: 5, steps: 5)
    job.finish()
    let (src, h) = try attachedHistory(name)
    XCTAssertEqual(DashboardModel(history: h, state: AppState(), themeName: "").header.state, "finished")
    XCTAssertEqual(JobDirectory.summary(job: name, in: .default).phase, .finished)
    // and a finished job takes no stop request that could relabel it
    XCTAssertThrowsError(try src.setDesired(.stop))
  }

  /// A job ended by a signal (no stop request) before its last step also reads as stopped.
  func testJobEndedEarlyBySignalIsStopped() throws {
    let name = "dash-unit-sig-\(getpid())"
    let job = try syntheticJob(name, totalSteps: 50, steps: 7)
    job.event(.stopped)
    job.finish()
    let (_, h) = try attachedHistory(name)
    XCTAssertEqual(h.desired, .run)
    XCTAssertEqual(DashboardModel(history: h, state: AppState(), themeName: "").header.state, "stopped")
    let summary = JobDirectory.summary(job: name, in: .default)
    XCTAssertEqual(summary.phase, .stopped)
    XCTAssertEqual(JobListRow(summary).state, "stopped")
  }

  func testMissingJobIsOneLineError() {
    XCTAssertThrowsError(try TelemetrySource(job: "no-such-job-\(getpid())", in: .default, logPath: nil)) { e in
      XCTAssertFalse("\(e)".contains("\n"))
      XCTAssertTrue("\(e)".contains("no job"), "\(e)")
    }
  }
}

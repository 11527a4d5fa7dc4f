// `tptop-dev bench-dashboard`: the dashboard's own CPU time with a synthetic job attached.

import ArgumentParser
import Dashboard
import Foundation
import Glibc
import Telemetry
import TelemetryFixtures

struct BenchDashboard: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-dashboard",
    abstract: "Measure the dashboard's own CPU use with a synthetic 16-rank job attached.")

  @Option(help: "Seconds to measure.") var seconds: Double = 10
  @Option(help: "Ranks in the synthetic job.") var ranks: Int = 16
  @Option(help: "Tensor-parallel size of the synthetic job.") var tp: Int = 4
  @Option(help: "Steps per second the synthetic job writes.") var stepsPerSecond: Double = 10
  @Option(help: "Seconds between refreshes (the default refresh when omitted).") var refresh: Double = DashboardOptions().refresh
  @Option(help: "Screen size WxH of the capture backend.") var size: String = "120x40"

  func run(in space: SegmentSpace) throws {
    let dims = size.split(separator: "x").compactMap { Int($0) }
    guard dims.count == 2, dims[0] > 0, dims[1] > 0 else { throw ValidationError("--size must look like 120x40") }
    guard ranks >= 1, tp >= 1, ranks % tp == 0, seconds > 0, stepsPerSecond > 0 else {
      throw ValidationError("need ranks ≥ 1 divisible by tp, and positive --seconds and --steps-per-second")
    }
    let name = "bench-dash-\(getpid())"
    let synthetic: SyntheticJob
    do { synthetic = try SyntheticJob(job: name, in: space, worldSize: ranks, tp: tp, totalSteps: 1_000_000) } catch {
      printErr("tptop-dev: \(error)")
      throw ExitCode(1)
    }
    defer { try? synthetic.remove() }
    synthetic.advance(steps: 200)
    // The writer runs on its own thread; only the dashboard thread's CPU time is measured.
    let stop = StopFlag()
    let box = WriterBox(synthetic)
    let period = 1 / stepsPerSecond
    let writer = Thread {
      while !stop.isSet {
        box.job.advance(steps: 1)
        sleepSeconds(period)
      }
    }
    writer.start()
    defer { stop.set() }
    let source = try TelemetrySource(job: name, in: space, logPath: nil)
    let backend = CaptureBackend(width: dims[0], height: dims[1])
    let app = DashboardApp(source: source, backend: backend, library: ThemeLibrary(directories: []),
                           theme: Theme.builtIn, options: DashboardOptions(refresh: refresh))
    let cpu0 = threadCPUSeconds(), proc0 = processCPUSeconds(), wall0 = monotonicSeconds()
    app.run(duration: seconds)
    let cpu = threadCPUSeconds() - cpu0, proc = processCPUSeconds() - proc0, wall = monotonicSeconds() - wall0
    stop.set()
    print("# \(ranks) ranks, refresh \(refresh) s, sample every \(DashboardOptions(refresh: refresh).sampleInterval) s, \(app.framesRendered) frames, \(backend.cellsWritten) cells written, \(dims[0])x\(dims[1])")
    print(String(format: "# process CPU incl. synthetic writer thread: %.2f %%", 100 * proc / wall))
    print(String(format: "BENCH dashboard_cpu_percent %.3f %%", 100 * cpu / wall))
  }
}

/// Hands the synthetic job to the writer thread, which is then its only user.
final class WriterBox: @unchecked Sendable {
  let job: SyntheticJob
  init(_ job: SyntheticJob) { self.job = job }
}

/// A flag set by one thread and read by another.
final class StopFlag: @unchecked Sendable {
  private let lock = NSLock()
  private var value = false
  var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
  func set() { lock.lock(); value = true; lock.unlock() }
}

private func threadCPUSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

private func processCPUSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

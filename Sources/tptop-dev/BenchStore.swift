// `tptop-dev bench-store` (`make bench-all`): the store's write rate and bytes per step per rank,
// and the time to the first screen of `tptop open` on a finished run of 100 000 steps × 8 ranks
// and of `tptop compare` on five such runs, with the peak resident memory.

import ArgumentParser
import Dashboard
import Foundation
import JobSchema
import TelemetryFixtures
import RunStore
import RunViews
import Telemetry

struct BenchStore: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "bench-store", abstract: "Benchmark the run store.")

  @Option var steps = 100_000
  @Option var ranks = 8
  @Option var runs = 5
  @Option(help: "Rounds of the open and compare timings; the medians are printed.") var rounds = 3

  func run() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tptop-bench-store-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    setenv("TPTOP_RUNS", dir, 1)
    let location = StoreLocation(directory: dir)
    let h = RunHeader(name: "bench-0", job: "bench-0", writer: "tptrain", state: "finished", started: 1_700_000_000,
                      world: ranks, tp: ranks, dp: 1, totalSteps: steps, preset: "synthetic", budgetBytes: 256 << 20)
    let file = try RunFile(location: location, header: h, reopen: false)
    let acc = RunAccumulator(world: ranks, dp: 1, bucketSteps: RunAccumulator.bucketSteps(steps: steps, world: ranks, budgetBytes: 256 << 20),
                             wallOffset: 1_700_000_000)
    let model = ModelShape(layers: 12, heads: 12, channels: 768, vocab: 50257, paddedVocab: 50304, maxSeq: 1024, batch: 8, seq: 1024)
    let t0 = Date()
    for step in 1...steps {
      for rank in 0..<ranks { acc.add(SyntheticJob.plausibleRecord(step: step, rank: rank, model: model), nowNs: 0) }
      if step % 2000 == 0 {
        try file.write(acc.takeBatch(nowNs: 0), state: "running", lastStep: acc.lastStep, finalLoss: acc.finalLoss, bestLoss: acc.bestLoss)
      }
    }
    try file.write(acc.takeBatch(nowNs: 0, final: true), state: "finished", lastStep: acc.lastStep, finalLoss: acc.finalLoss,
                   bestLoss: acc.bestLoss, ended: 1_700_000_000 + Double(steps))
    let writeSeconds = Date().timeIntervalSince(t0)
    print(String(format: "BENCH store_write_rank_steps_per_s %.0f rows/s", Double(steps * ranks) / writeSeconds))
    let path = location.path(run: "bench-0")
    let bytes = ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
      + ((try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0)
    print(String(format: "BENCH store_bytes_per_step_per_rank_synthetic %.0f B", Double(bytes) / Double(steps * ranks)))
    for i in 1..<runs { try FileManager.default.copyItem(atPath: path, toPath: location.path(run: "bench-\(i)")) }

    let rss0 = peakRSS()
    var opens: [Double] = [], compares: [Double] = []
    var frames = 0
    for _ in 0..<max(1, rounds) {
      var t = Date()
      let source = StoredSource(run: try StoredRun(location: location, name: "bench-0"))
      let backend = CaptureBackend(width: 160, height: 48)
      let app = DashboardApp(source: source, backend: backend, library: ThemeLibrary(directories: []), theme: Theme.builtIn,
                             options: DashboardOptions(refresh: 1, readonly: true))
      app.run(duration: 0.001)
      opens.append(Date().timeIntervalSince(t))
      frames = app.framesRendered
      t = Date()
      let loaded = try (0..<runs).map { try ComparedRun.stored(StoredRun(location: location, name: "bench-\($0)")) }
      let names = ComparedRun.preferred.filter { n in loaded.contains { $0.series[n] != nil } }
      _ = renderCompare(loaded, CompareState(seriesNames: names), width: 160, height: 48, unicode: true)
      compares.append(Date().timeIntervalSince(t))
    }
    func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
    func summary(_ xs: [Double]) -> String { "(median of \(xs.count): " + xs.map { String(format: "%.3f", $0) }.joined(separator: " ") + ")" }
    print(String(format: "BENCH store_open_first_screen_s %.3f s ", median(opens)) + summary(opens))
    print(String(format: "BENCH store_open_frames %d frames", frames))
    print(String(format: "BENCH store_compare%d_first_screen_s %.3f s ", runs, median(compares)) + summary(compares))
    print(String(format: "BENCH store_open_compare_peak_rss_growth_mib %.1f MiB", Double(peakRSS() - rss0) / 1_048_576))
  }

  func peakRSS() -> Int {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return u.ru_maxrss * 1024
  }
}

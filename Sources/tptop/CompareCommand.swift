// `tptop compare RUN RUN…`: up to eight runs overlaid (RunViews' CompareState and renderCompare);
// `--plain` prints the table of what differs.

import ArgumentParser
import Dashboard
import Foundation
import RunViews

struct CompareRuns: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "compare",
    abstract: "Overlay up to 8 runs: stored runs, TensorBoard runs or log directories.",
    discussion: "Keys: s next series, x step/tokens/wall time, e/E more/less smoothing (TensorBoard's EMA), l log y, q quit.")

  @Argument(help: "Stored run names, TensorBoard run directories or log directories.")
  var runs: [String]
  @Flag(help: "Print the table of differing settings and losses, and exit.")
  var plain = false

  func validate() throws {
    guard !runs.isEmpty else { throw ValidationError("name at least one run") }
  }

  func run() throws {
    var problems: [String] = []
    let loaded = try loadComparedRuns(runs, problems: &problems)
    for p in problems { FileHandle.standardError.write(Data("tptop: \(p)\n".utf8)) }
    guard loaded.count <= 8 else { throw failure("compare takes at most 8 runs (\(loaded.count) given)") }
    if plain {
      for line in alignedTable(compareTable(loaded)) { emit(line) }
      return
    }
    let names = ComparedRun.preferred.filter { n in loaded.contains { $0.series[n] != nil } }
      + Set(loaded.flatMap { $0.series.keys }).subtracting(ComparedRun.preferred).sorted()
    var state = CompareState(seriesNames: names)
    var reason = ""
    let env = ProcessInfo.processInfo.environment
    guard env["TERM"] != nil, env["TERM"] != "dumb", let backend = CursesBackend(environment: env, reason: &reason) else {
      if !reason.isEmpty { FileHandle.standardError.write(Data("tptop: \(reason); printing the table\n".utf8)) }
      for line in alignedTable(compareTable(loaded)) { emit(line) }
      return
    }
    backend.apply(Theme.builtIn)
    defer { backend.shutdown() }
    while !state.quit {
      let size = backend.size
      backend.present(renderCompare(loaded, state, width: size.width, height: size.height, unicode: backend.unicode))
      guard let key = backend.readKey(timeout: 1) else { continue }
      state = state.handle(key)
    }
  }
}

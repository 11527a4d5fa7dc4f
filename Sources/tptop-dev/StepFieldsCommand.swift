// `tptop-dev step-fields`: the step field table (JobSchema's `StepFields`) as JSON, one object per
// field, for programs of other languages that must agree with it (the Python writer's tests).

import ArgumentParser
import JobSchema
import Telemetry

struct StepFieldsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "step-fields", abstract: "Print the table of step fields as JSON (one object per field).")

  func run() throws {
    for line in Self.lines() { emit(line) }
  }

  /// One JSON object per field: its export name and older names, unit, whether the record
  /// carries it, its store column, its `--log` keys, TensorBoard tag, metric family, watch name.
  static func lines() -> [String] {
    func quoted(_ s: String?) -> String { s.map { "\"\($0)\"" } ?? "null" }
    func list(_ xs: [String]) -> String { "[" + xs.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
    return StepFields.all.map { f in
      "{\"name\":\(quoted(f.name)),\"aliases\":\(list(f.aliases)),\"unit\":\(quoted(f.unit.rawValue)),"
        + "\"recorded\":\(f.recorded),\"column\":\(quoted(f.recorded ? f.column : nil)),\"log\":\(list(f.log.map(\.key))),"
        + "\"tensorboard\":\(quoted(f.tensorBoard?.tag)),\"metric\":\(quoted(f.metric?.family)),\"watch\":\(quoted(f.watch))}"
    }
  }
}

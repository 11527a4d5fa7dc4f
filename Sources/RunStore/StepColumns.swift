// Where each field of a step record goes in the store: the recorded fields of JobSchema's step
// field table (`StepFields`), under their store column names, in the table's order. The
// writer, the readers and the export all walk it. The Python writer
// (python/tptop_telemetry/store.py) writes the same names; a test holds the two together.

import JobSchema

/// One stored field of a step record (a recorded `StepField`): its column name and how to read
/// and write it on `StepMetrics`, as a Double.
public typealias StepColumn = StepField

/// The stored fields of a step record, in column order (the all-reduce histogram is stored as a
/// 64-byte blob beside them).
public enum StepColumns {
  /// Every stored field but the step number and the histogram.
  public static let all: [StepColumn] = StepFields.recorded
  /// Each column's reader and whether it holds integers, apart: the recorder reads every column
  /// of every record, and a `StepField` copied out of `all` retains a dozen references.
  static let readers: [@Sendable (StepMetrics) -> Double] = all.map { c in { c.value($0) } }
  static let integral: [Bool] = all.map(\.integral)

  /// The column index of `name` (a column name or the field's export name), nil when there is none.
  public static func index(_ name: String) -> Int? { all.firstIndex { $0.column == name || $0.name == name } }
}

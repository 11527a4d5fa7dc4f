import Dashboard
@testable import RunViews
import XCTest

/// The compare screen on a small terminal: every run in the legend, the losses in the table
/// before any setting, and a cut table that says how much it left out and where the rest is.
final class CompareScreenTests: XCTestCase {
  func run(_ i: Int) -> ComparedRun {
    let losses = (0..<200).map { 4.0 - Double($0) * 0.01 * Double(i + 1) }
    var settings = ["lr": "0.00\(i + 1)", "seed": "\(i)", "batch": "\(8 << i)", "seq": "\(64 << i)", "warmup": "\(i * 10)"]
    settings["grid"] = "tp \(i + 1) × dp 1"
    return ComparedRun(name: "sweep-run-\(i)", settings: settings,
                       series: ["loss": losses.enumerated().map { (Double($0), Double($0 * 2048), Double($0), $1) }])
  }

  func testEightyByTwentyFourKeepsTheLegendAndTheLosses() throws {
    let runs = (0..<5).map(run)
    let g = renderCompare(runs, CompareState(seriesNames: ["loss"]), width: 80, height: 24, unicode: true)
    let rows = (0..<24).map(g.rowText)
    let text = rows.joined(separator: "\n")
    for r in runs { XCTAssertTrue(text.contains("\(r.name)  last "), "legend lacks \(r.name):\n\(text)") }
    for label in ["final loss", "best loss", "last-100 mean"] {
      XCTAssertTrue(rows.contains { $0.hasPrefix(" \(label)") }, "table lacks \(label):\n\(text)")
    }
    // 1 header + 4 result rows + 6 differing settings = 11 rows; what is not shown is counted
    let shown = rows.filter { row in ["run", "final loss", "best loss", "last-100 mean", "steps run", "batch", "grid", "lr", "seed", "seq", "warmup"]
      .contains { row.hasPrefix(" \($0) ") } }.count
    let note = try XCTUnwrap(rows.first { $0.contains("more rows: tptop compare --plain") }, text)
    XCTAssertTrue(note.contains("… \(11 - shown) more rows"), "\(shown) rows shown:\n\(text)")
    XCTAssertTrue(rows[23].contains("q quit"), text)
    let chart = try XCTUnwrap(g.pane("chart"), text)
    XCTAssertGreaterThanOrEqual(chart.height, 8, "a chart one can read beside the table:\n\(text)")
  }

  func testATallScreenShowsTheWholeTable() {
    let runs = (0..<3).map(run)
    let g = renderCompare(runs, CompareState(seriesNames: ["loss"]), width: 120, height: 50, unicode: false)
    let text = (0..<50).map(g.rowText).joined(separator: "\n")
    XCTAssertFalse(text.contains("more rows"), text)
    for label in ["steps run", "warmup", "seq"] { XCTAssertTrue(text.contains(" \(label) "), "lacks \(label):\n\(text)") }
  }

  /// A setting a run was not given reads "default" ("none" for features), and the settings of
  /// a run that records none (a TensorBoard run) "n/a": never one "-" for both.
  func testAMissingSettingSaysWhy() {
    let a = ComparedRun(name: "a", settings: ["lr": "0.001", "sequence-parallel": "true", "features": "SP"], series: [:])
    let b = ComparedRun(name: "b", settings: ["lr": "0.003"], series: [:])
    let tb = ComparedRun(name: "tb", settings: [:], series: [:])
    let rows = compareTable([a, b, tb])
    XCTAssertEqual(rows.first, ["run", "a", "b", "tb"])
    XCTAssertEqual(Array(rows.suffix(3)), [
      ["features", "SP", "none", "n/a"],
      ["lr", "0.001", "0.003", "n/a"],
      ["sequence-parallel", "true", "default", "n/a"],
    ])
  }
}

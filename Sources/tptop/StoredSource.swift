// `tptop open RUN|LOGDIR`: the dashboard on a stored run or a TensorBoard run (RunViews'
// StoredSource and TensorBoardSource).

import ArgumentParser
import Dashboard
import Foundation
import RunStore
import RunViews
import TensorBoard

func openedSource(_ name: String) throws -> JobSource {
  var isDir: ObjCBool = false
  if FileManager.default.fileExists(atPath: name, isDirectory: &isDir), isDir.boolValue {
    let runs = LogDirectory.jobRuns(at: name)
    guard let first = runs.first else { throw failure("\(name) holds no TensorBoard event files") }
    if runs.count > 1 {
      FileHandle.standardError.write(Data("tptop: \(name) holds \(runs.count) runs; opening \(first.name) (tptop compare shows them all)\n".utf8))
    }
    do { return try TensorBoardSource(name: first.name, files: first.files) } catch { throw failure("\(error)") }
  }
  do {
    return StoredSource(run: try StoredRun.recording(name, location: StoreLocation.fromEnvironment()))
  } catch {
    throw failure("\(error)")
  }
}

struct OpenRun: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "open", abstract: "The dashboard on a stored run (finished or live) or a TensorBoard run directory.")

  @Argument(help: "Stored run name (tptop runs) or TensorBoard run directory.")
  var name: String
  @Option(help: "Theme name (themes/NAME.theme) or path to a .theme file.")
  var theme: String?

  func run() throws {
    let source = try openedSource(name)
    _ = DashboardSession.run(source: source, options: DashboardOptions(refresh: 1, readonly: true), themeName: theme)
  }
}

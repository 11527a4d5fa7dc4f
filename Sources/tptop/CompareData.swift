// The runs `tptop compare` names, loaded from the store or from TensorBoard log directories.

import Foundation
import RunStore
import RunViews
import TensorBoard

/// Loads the runs named on the command line: stored runs, TensorBoard run directories, or log
/// directories (each of their runs). Problems with event files are collected, one line each.
func loadComparedRuns(_ names: [String], problems: inout [String]) throws -> [ComparedRun] {
  let location = StoreLocation.fromEnvironment()
  var out: [ComparedRun] = []
  for name in names {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: name, isDirectory: &isDir), isDir.boolValue {
      let runs = LogDirectory.jobRuns(at: name)
      if runs.isEmpty { throw failure("\(name) holds no TensorBoard event files") }
      for r in runs {
        let base = (URL(fileURLWithPath: name).standardizedFileURL.path as NSString).lastPathComponent
        let label = runs.count == 1 || r.name == base ? base : base + "/" + r.name
        out.append(try ComparedRun.tensorBoard(name: label, files: r.files, problems: &problems))
      }
      continue
    }
    do {
      out.append(try ComparedRun.stored(StoredRun.recording(name, location: location)))
    } catch let e as StoreError {
      throw failure(e.description)
    }
  }
  return out
}

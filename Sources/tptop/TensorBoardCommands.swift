// TensorBoard both ways for `tptop export`: a stored run as event files (`--format tfevents
// --output DIR`), and a TensorBoard log directory as JSON lines (one object per scalar event).

import ArgumentParser
import Foundation
import JobSchema
import RunStore
import Telemetry
import TensorBoard

/// Writes stored run `name` as event files under `directory`; returns the files written.
func exportTensorBoard(run name: String, directory: String) throws -> [String] {
  let location = StoreLocation.fromEnvironment()
  let run: StoredRun
  do { run = try StoredRun(location: location, name: name) } catch { throw failure("\(error)") }
  // event files already there would be read with the new ones as one run (TensorBoard reads
  // every file of a directory): the run's steps twice
  if let held = LogDirectory.runs(at: directory).first {
    throw failure("\(directory) already holds TensorBoard event files (\(held.name)): a second export there would add to them; remove them or name another --output")
  }
  do {
    let job = try EventFileWriter(directory: directory + "/job", wallTime: run.header.started)
    let columns = TensorBoardTags.series.map { t in (StoreSchema.seriesColumns.firstIndex(of: t.column)!, t.tag, t.scale) }
    try run.series { row in
      let scalars = columns.compactMap { i, tag, scale -> (tag: String, value: Double)? in
        row.values[i].isNaN ? nil : (tag, row.values[i] * scale)
      }
      try job.write(step: Int64(row.step), wallTime: row.wallTime, scalars: scalars)
    }
    try job.close()
    var files = [job.path]
    var writers: [Int: EventFileWriter] = [:]
    let rankColumns = StepFields.tensorBoardRank
    let wallOffset = run.header.started
    try run.rankSteps { s, _, wallTime in
      if writers[s.rank] == nil {
        writers[s.rank] = try EventFileWriter(directory: directory + "/rank\(s.rank)", wallTime: wallOffset)
      }
      let scalars = rankColumns.map { c in (tag: c.tag, value: c.field.value(s.metrics) * c.scale) }
      try writers[s.rank]!.write(step: Int64(s.step), wallTime: wallTime, scalars: scalars)
    }
    for (_, w) in writers.sorted(by: { $0.key < $1.key }) {
      try w.close()
      files.append(w.path)
    }
    return files
  } catch let e as TensorBoardError {
    throw failure(e.description)
  } catch let e as StoreError {
    throw failure(e.description)
  }
}

/// A number as JSON (non-finite values as null).
func jsonNumber(_ v: Double) -> String { v.isFinite ? "\(v)" : "null" }

/// `tptop export LOGDIR --format jsonl|csv`: every scalar event of every run under `path`.
/// Damaged files are one line each on stderr; what precedes the damage is still exported.
func exportLogDirectory(_ path: String, format: TelemetryExport.Format, output: String?) throws {
  let runs = LogDirectory.runs(at: path)
  let sink = try LineSink(path: output)
  if format == .csv { try sink.write("run,tag,step,wall_time,value") }
  var count = 0
  for run in runs {
    for file in run.files {
      do {
        let reader = try EventFileReader(path: file)
        try reader.readScalars { e in
          count += 1
          if format == .csv {
            try sink.write([TelemetryExport.csvCell(run.name), TelemetryExport.csvCell(e.tag), "\(e.step)",
                            "\(e.wallTime)", e.value.isFinite ? "\(e.value)" : ""].joined(separator: ","))
          } else {
            try sink.write("{\"run\":\(TelemetryExport.jsonText(run.name)),\"tag\":\(TelemetryExport.jsonText(e.tag)),"
                           + "\"step\":\(e.step),\"wall_time\":\(jsonNumber(e.wallTime)),\"value\":\(jsonNumber(e.value))}")
          }
        }
        if let p = reader.problem { FileHandle.standardError.write(Data("tptop: \(p)\n".utf8)) }
      } catch let e as TensorBoardError {
        FileHandle.standardError.write(Data("tptop: \(e)\n".utf8))
      }
    }
  }
  try sink.close()
  if let p = output, p != "-" {
    FileHandle.standardError.write(Data("exported \(count) scalar events of \(runs.count) runs to \(p)\n".utf8))
  }
}

/// The export of a name that is not a live job: a log directory, a stored run, or a stored
/// run as event files. False when the name is none of these (the live export then reports).
func exportFromStoreOrLogDirectory(_ name: String, in space: SegmentSpace, format: String, output: String?) throws -> Bool {
  if format == "tfevents" {
    guard let dir = output, dir != "-" else { throw failure("--format tfevents needs --output DIR") }
    let files = try exportTensorBoard(run: name, directory: dir)
    FileHandle.standardError.write(Data("wrote \(files.count) event files of run \(name) under \(dir)\n".utf8))
    return true
  }
  let fmt = TelemetryExport.Format(rawValue: format) ?? .jsonl
  var isDir: ObjCBool = false
  if FileManager.default.fileExists(atPath: name, isDirectory: &isDir), isDir.boolValue, LogDirectory.isLogDirectory(name) {
    try exportLogDirectory(name, format: fmt, output: output)
    return true
  }
  if !SegmentName.isValid(name) || !space.allJobs().contains(name) {
    return try exportStoredRun(name, format: fmt, output: output)
  }
  // a job that has ended, perhaps restarted by its supervisor: its rings hold the last steps of
  // this incarnation only, its stored run every step of every incarnation — once this
  // incarnation's recorder is done with it (the run ended, or a later incarnation records it)
  guard let reader = try? JobReader(job: name, in: space), reader.phase(stalls: false).isTerminal,
        let run = JobRuns.ended(name, createdAt: reader.info.creationTime),
        !run.header.isLive || run.header.job != name else { return false }
  let h = run.header
  let incarnations = h.incarnations == 1 ? "" : " of its \(h.incarnations) incarnations"
  return try exportStoredRun(h.name, format: fmt, output: output,
                             why: "job \(name) has ended: every step\(incarnations), where its segment holds its last steps only")
}

// The run store's commands: `runs` (list), `rm` (delete), and `export` of a stored run (the
// export command hands a name with no live segment to `exportStoredRun`).

import ArgumentParser
import Foundation
import JobSchema
import RunStore
import Telemetry

let runSubcommands: [ParsableCommand.Type] = [ListRuns.self, RemoveRuns.self, CompareRuns.self, OpenRun.self]

/// A stored run's row of `tptop runs`, judged from its header.
struct RunListing {
  let name: String
  let header: RunHeader?
  let problem: String?

  /// The state shown: the recorded one, or `lost` for a run whose recorder stopped writing
  /// without saying how the run ended (its process was killed).
  var state: String {
    guard let h = header else { return "unreadable" }
    if h.isLive && !processAlive(h.recorderPid) && Date().timeIntervalSince1970 - h.updated > 5 { return "lost" }
    return h.state
  }

  var fields: [String] {
    guard let h = header else { return [name, state, "-", "-", "-", "-", "-", "-", "-", problem ?? ""] }
    let end = h.ended ?? (state == "lost" ? h.updated : Date().timeIntervalSince1970)
    let grid = GridNotation.text(tp: h.tp, dp: h.dp)
    // the preset and the memory-saving features the run used
    let config = ([h.preset] + h.features.labels).joined(separator: " ")
    func loss(_ v: Float?) -> String { v.map { String(format: "%.4f", $0) } ?? "-" }
    return [name, state, formatStart(h.started), formatAge(end - h.started), "\(h.lastStep)/\(h.totalSteps)", grid, config,
            loss(h.finalLoss), loss(h.bestLoss), h.hosts.isEmpty ? "-" : h.hosts]
  }

  static let columns = ["NAME", "STATE", "START", "DURATION", "STEPS", "GRID", "CONFIG", "LOSS", "BEST", "HOSTS"]

  /// Every run of `location`, unreadable ones with their one-line problem.
  static func all(_ location: StoreLocation) -> [RunListing] {
    location.runNames().map { name in
      do {
        return RunListing(name: name, header: try StoredRun(location: location, name: name).header, problem: nil)
      } catch {
        return RunListing(name: name, header: nil, problem: "\(error)")
      }
    }
  }
}

/// "2026-12-07 02:14" in local time.
func formatStart(_ t: Double) -> String {
  var secs = time_t(t)
  var tmv = tm()
  localtime_r(&secs, &tmv)
  return String(format: "%04d-%02d-%02d %02d:%02d", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
                Int(tmv.tm_hour), Int(tmv.tm_min))
}

/// `--since`: "90s", "30m", "2h", "3d", or a date "YYYY-MM-DD" (local midnight); Unix seconds.
func parseSince(_ text: String, now: Double = Date().timeIntervalSince1970) -> Double? {
  if let unit = text.last, let n = Double(text.dropLast()), n >= 0 {
    switch unit {
    case "s": return now - n
    case "m": return now - n * 60
    case "h": return now - n * 3600
    case "d": return now - n * 86400
    default: break
    }
  }
  let parts = text.split(separator: "-").compactMap { Int($0) }
  guard parts.count == 3 else { return nil }
  var tmv = tm()
  tmv.tm_year = Int32(parts[0] - 1900)
  tmv.tm_mon = Int32(parts[1] - 1)
  tmv.tm_mday = Int32(parts[2])
  tmv.tm_isdst = -1
  let t = mktime(&tmv)
  return t == -1 ? nil : Double(t)
}

struct ListRuns: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "runs",
    abstract: "List the stored runs, live and finished ($TPTOP_RUNS, else $XDG_DATA_HOME/tptop/runs, else ~/.local/share/tptop/runs).")

  @Argument(help: "Only runs whose name contains this text.")
  var filter: String?
  @Option(help: "Only runs started since then: 90s, 30m, 2h, 3d, or a date YYYY-MM-DD.")
  var since: String?
  @Flag(help: "Tab-separated lines without the header, for pipes.")
  var plain = false

  func validate() throws {
    if let s = since, parseSince(s) == nil { throw ValidationError("--since must be like 30m, 2h, 3d or 2026-12-01, not '\(s)'") }
  }

  func run() throws {
    let location = StoreLocation.fromEnvironment()
    let cutoff = since.flatMap { parseSince($0) }
    let rows = RunListing.all(location).filter { r in
      (filter.map { r.name.contains($0) } ?? true) && (cutoff.map { c in (r.header?.started ?? .infinity) >= c } ?? true)
    }.sorted { ($0.header?.started ?? 0, $0.name) < ($1.header?.started ?? 0, $1.name) }
    if plain {
      for r in rows { emit(r.fields.joined(separator: "\t")) }
      return
    }
    if rows.isEmpty {
      emit("no stored runs in \(location.directory)" + (filter != nil || since != nil ? " match" : ""))
      return
    }
    let table = [RunListing.columns] + rows.map(\.fields)
    let widths = RunListing.columns.indices.map { c in table.map { $0[c].count }.max() ?? 0 }
    for row in table {
      emit(row.enumerated().map { c, v in c == row.count - 1 ? v : v.padding(toLength: widths[c], withPad: " ", startingAt: 0) }
        .joined(separator: "  "))
    }
  }
}

struct RemoveRuns: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete stored runs (asks first unless --yes).")

  @Argument(help: "Run names or globs ('ux-*', as tptop ls takes them).")
  var runs: [String]
  @Flag(help: "Do not ask.")
  var yes = false

  func validate() throws {
    guard !runs.isEmpty else { throw ValidationError("name at least one run (tptop runs lists them)") }
  }

  func run() throws {
    let location = StoreLocation.fromEnvironment()
    let stored = location.runNames()
    for name in runs where NamePattern.expand([name], among: stored).isEmpty {
      throw failure(NamePattern.isGlob(name) ? "no stored run matches '\(name)' in \(location.directory)"
                      : "no stored run named '\(name)' in \(location.directory)")
    }
    let runs = NamePattern.expand(runs, among: stored)
    if !yes {
      FileHandle.standardError.write(Data("delete \(runs.count == 1 ? "run" : "\(runs.count) runs") \(runs.joined(separator: ", ")) from \(location.directory)? [y/N] ".utf8))
      let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
      guard answer == "y" || answer == "yes" else { throw failure("nothing deleted") }
    }
    for name in runs {
      do { try location.remove(run: name) } catch { throw failure("\(error)") }
      emit("deleted run \(name)")
    }
  }
}

/// Lines written to `--output` by `OutputFile`'s rules (a regular file replaced atomically; a
/// link, device or FIFO written through; `-` standard output), buffered.
final class LineSink {
  private let stream: OutputFile.Stream
  private var buffer: [UInt8] = []

  init(path: String?) throws {
    do { stream = try OutputFile.Stream(path: path ?? "-") } catch let e as OutputFile.Failure { throw failure(e.description) }
  }

  func write(_ line: String) throws {
    buffer.append(contentsOf: line.utf8)
    buffer.append(10)
    if buffer.count >= 1 << 16 { try flush() }
  }

  func flush() throws {
    guard !buffer.isEmpty else { return }
    do { try stream.write(buffer) } catch let e as OutputFile.Failure { throw failure(e.description) }
    buffer.removeAll(keepingCapacity: true)
  }

  func close() throws {
    try flush()
    do { try stream.finish() } catch let e as OutputFile.Failure { throw failure(e.description) }
  }
}

/// `tptop export RUN` for a run with no live segment (or an ended job's, `why` saying so): every
/// record the store holds, as the live export writes them. False when no stored run has that name.
func exportStoredRun(_ name: String, format: TelemetryExport.Format, output: String?, why: String? = nil) throws -> Bool {
  let location = StoreLocation.fromEnvironment()
  guard StoreLocation.isValidRunName(name), location.exists(run: name) else { return false }
  let run: StoredRun
  do { run = try StoredRun(location: location, name: name) } catch { throw failure("\(error)") }
  let sink = try LineSink(path: output)
  if format == .csv { try sink.write(TelemetryExport.csvHeader) }
  let count: Int
  do {
    // dated by the clock offset measured when the run was recorded (a reboot since moved the
    // boot clock); a run stored before the store kept it is dated by today's
    let h = run.header
    let context = h.wallMinusBootNs.map { TelemetryExport.Context(wallMinusBootNs: $0, tensorNames: h.tensors.map(\.name)) }
      ?? TelemetryExport.Context(tensorNames: h.tensors.map(\.name))
    count = try run.records { try sink.write(TelemetryExport.line($0, format: format, context: context)) }
  } catch let e as StoreError {
    throw failure(e.description)
  }
  try sink.close()
  if let p = output, p != "-" {
    FileHandle.standardError.write(Data("exported \(count) stored records of run \(name)\(why.map { " (\($0))" } ?? "") to \(p)\n".utf8))
  }
  return true
}

import ArgumentParser
import Foundation
import JobSchema
import RunStore
import Telemetry

/// Plain-text readers and the command-line control channel (ls, watch, export, pause, ...).
let jobSubcommands: [ParsableCommand.Type] = [
  ListJobs.self, WatchJob.self, ExportJob.self, PauseJob.self, ResumeJob.self, CheckpointJob.self,
  StopJob.self, CollectGarbage.self,
]

// MARK: Shared helpers

/// Prints `tptop: <message>` on stderr and returns the exit code to throw.
func failure(_ message: String, code: Int32 = 1) -> ExitCode {
  FileHandle.standardError.write(Data(("tptop: " + message + "\n").utf8))
  return ExitCode(code)
}

/// Runs `body`, turning a `TelemetryError` into one line on stderr and exit status 1.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
  do {
    return try body()
  } catch let e as TelemetryError {
    throw failure(e.description)
  }
}

/// Writes one line to stdout and flushes it (so pipes and CI logs see it at once).
func emit(_ line: String) {
  FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// "5s", "3m12s", "2h05m", "3d04h".
func formatAge(_ seconds: Double) -> String {
  let s = Int(max(0, seconds))
  if s < 60 { return "\(s)s" }
  if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
  if s < 86400 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
  return "\(s / 86400)d\(String(format: "%02d", s % 86400 / 3600))h"
}

/// A gradient norm with 4 significant digits ("134.8", "0.8312", "1.2e+04").
func formatGradNorm(_ v: Float) -> String {
  guard v.isFinite else { return "\(v)" }
  return String(format: "%.4g", v)
}

func formatLoss(_ loss: Float?) -> String {
  guard let l = loss else { return "-" }
  return l.isFinite ? String(format: "%.4f", l) : "\(l)"
}

/// The job argument shared by the control commands.
struct JobArgument: ParsableArguments {
  @Argument(help: "Job name (see `tptop ls`).")
  var job: String

  func validate() throws {
    guard SegmentName.isValid(job) else { throw ValidationError(TelemetryError.invalidJobName(job).description) }
  }
}

/// Options shared by the control commands.
struct WaitOptions: ParsableArguments {
  @Flag(name: .customLong("no-wait"), help: "Return once the request is written, without waiting for the ranks.")
  var noWait = false
  @Option(help: "Seconds to wait for every rank to acknowledge.")
  var timeout: Double = 10

  func validate() throws {
    guard timeout > 0 && timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") }
  }
}

// MARK: ls

struct ListJobs: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "ls", abstract: "List the training jobs on this machine.")

  @Argument(help: "Only jobs whose name contains this text (or matches it as a glob: 'ux-*').")
  var filter: String?
  @Option(name: .customLong("stale-after"), help: "Seconds without heartbeat (and no process) before a rank counts as dead and its job as failed; also the least silence (20 × the median step time when longer) after which a node of a multi-node job counts as lost.")
  var staleAfter: Double = 5
  @Flag(help: "Every user's segments (default: only yours).")
  var all = false
  @Option(help: ArgumentHelp("Only jobs in these states, comma-separated: \(JobFilter.stateWords.joined(separator: ", ")); 'live' for every phase that has not ended (\(JobPhase.liveWords.map(\.rawValue).joined(separator: ", "))).", valueName: "STATES"))
  var state: String?

  func validate() throws {
    guard staleAfter >= 0 && staleAfter.isFinite else { throw ValidationError("--stale-after must be a non-negative number of seconds") }
    if let s = state { _ = try JobFilter.states(s) }
  }

  func run(in space: SegmentSpace) throws {
    let every = JobDirectory.list(in: space, staleAfter: staleAfter)
    if every.isEmpty {
      emit("no jobs (no \(space.path(job: ""))* segments)")
      return
    }
    let f = JobFilter(name: filter, states: try state.map(JobFilter.states), everyUser: all)
    let jobs = every.filter(f.accepts)
    let hidden = every.filter { !f.accepts($0) }
    if jobs.isEmpty {
      emit("no jobs match (\(f.describe(hidden)))")
      return
    }
    defer {
      if !hidden.isEmpty { emit("(not shown: \(f.describe(hidden)))") }
    }
    var rows: [[String]] = [["NAME", "STATE", "RANKS", "GRID", "STEP", "LOSS", "AGE", "NODES", "NOTE"]]
    for j in jobs {
      var note: [String] = []
      if !j.lostNodes.isEmpty {
        let names = j.lostNodes.map(String.init).joined(separator: ", ")
        note.append("node\(j.lostNodes.count == 1 ? "" : "s") \(names) lost (\(j.lostNodes.count == 1 ? "its" : "their") ranks stopped reporting)")
      }
      if j.phase == .stale { note.append("stale") }
      if let s = j.stall { note.append(s.description) }
      if let r = j.failedRank { note.append("rank \(r) failed first") }
      if j.foreign { note.append("another user's") }
      if let p = j.problem, !j.foreign { note.append(p) }
      rows.append([
        j.name, j.stateWord, j.worldSize > 0 ? "\(j.worldSize)" : "-",
        j.tp > 0 ? GridNotation.text(tp: j.tp, dp: j.dp) : "-", j.totalSteps > 0 ? "\(j.step)/\(j.totalSteps)" : "\(j.step)",
        // NODES after the older columns, so scripts reading them by position keep working
        formatLoss(j.loss), formatAge(j.age), j.problem == nil ? "\(j.nodes)" : "-", note.joined(separator: "; "),
      ])
    }
    let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
      let cells = row.enumerated().map { c, v in
        c == row.count - 1 ? v : v.padding(toLength: widths[c], withPad: " ", startingAt: 0)
      }
      emit(cells.joined(separator: "  ").trimmingCharacters(in: .whitespaces))
    }
  }
}

// MARK: watch

struct WatchJob: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "watch",
    abstract: "Print one plain line per step until the job ends (works in pipes and CI logs).",
    discussion: "Without JOB, watches the newest running job. Exit status: 0 when the job finishes, 1 when it fails or goes stale.")

  @Argument(help: "Job name (default: the newest live job).")
  var job: String?
  @Flag(name: .customLong("from-start"), help: "Print every step still in the rings first.")
  var fromStart = false
  @Option(name: .customLong("interval-ms"), help: "Polling interval, milliseconds.")
  var intervalMs: Int = 50

  func validate() throws {
    if let j = job, !SegmentName.isValid(j) { throw ValidationError(TelemetryError.invalidJobName(j).description) }
    guard intervalMs >= 1 && intervalMs <= 10_000 else { throw ValidationError("--interval-ms must be in 1...10000") }
  }

  func run(in space: SegmentSpace) throws {
    let name = try job ?? newestLiveJob(in: space)
    let reader = try reportingErrors { try JobReader(job: name, in: space) }
    let watcher = StepLinePrinter(reader: reader)
    if !fromStart { reader.seekToEnd(keepLast: 1) }
    emit("watching \(name): \(reader.info.preset) t=\(reader.info.tp) d=\(reader.info.dp), \(reader.info.totalSteps) steps")
    var lastStall: String?
    var lostNodes: [Int] = []
    while true {
      // Read the phase before polling: records published before it are seen by this poll.
      let phase = reader.phase()
      for line in watcher.consume(reader.poll()) { emit(line) }
      // a stall line once, and again when the stalled rank, the waiters or the collective change
      let stall = reader.stallDiagnosis()
      let key = stall.map { "\($0.rank)/\($0.waitingRanks)/\($0.collective?.description ?? "")" }
      if key != lastStall, let s = stall { emit("stalled: \(s.description)") }
      lastStall = key
      let lostAfter = reader.stallThreshold()
      let lost = JobReader.lostNodes(reader.ranks(), after: lostAfter)
      for n in lost where !lostNodes.contains(n) { emit("node \(n) lost: its ranks have not reported for over \(formatAge(lostAfter))") }
      lostNodes = lost
      guard phase.isTerminal else {
        usleep(useconds_t(intervalMs * 1000))
        continue
      }
      for line in watcher.flush() { emit(line) }
      // the job's last step, also when the ring's newest records were events, not steps
      let summary = reader.summary()
      // one word for the state, as ls and the dashboard say it
      let step = max(watcher.lastPrinted, summary.step)
      if phase == .stopped {
        emit("job \(name) stopped at step \(step) of \(summary.totalSteps)")
      } else {
        emit("job \(name) \(phase.word.rawValue) at step \(step)")
      }
      // a stopped job ended as asked: exit 0, as a finished one
      if !phase.endedCleanly { throw ExitCode(1) }
      return
    }
  }

  func newestLiveJob(in space: SegmentSpace) throws -> String {
    let jobs = JobDirectory.list(in: space).filter { $0.problem == nil }
    let live = jobs.filter(\.isLive)
    guard let j = (live.isEmpty ? jobs : live).min(by: { $0.age < $1.age }) else {
      throw failure("no job to watch; start one with tptrain --job NAME or name one (tptop ls)")
    }
    return j.name
  }
}

/// Joins the ranks' step records into one line per step.
final class StepLinePrinter {
  let reader: JobReader
  private var pending: [Int: [Int: StepRecord]] = [:]
  private var pendingEvents: [EventRecord] = []
  private(set) var lastPrinted = 0

  init(reader: JobReader) { self.reader = reader }

  /// Lines for every step all attached ranks have reported, and for events.
  func consume(_ polls: [RankPoll]) -> [String] {
    var lines: [String] = []
    for p in polls {
      if p.lost > 0 && lastPrinted > 0 { lines.append("rank \(p.rank): \(p.lost) records overwritten before they were read") }
      for s in p.steps where s.step > lastPrinted { pending[s.step, default: [:]][p.rank] = s }
      pendingEvents += p.events
    }
    // Events of steps already printed go out now; later ones after their step's line.
    lines += takeEvents(through: lastPrinted)
    let attached = Set(reader.ranks().filter { $0.attached }.map(\.rank))
    let complete = pending.filter { _, recs in attached.isSubset(of: Set(recs.keys)) }.keys.max()
    guard let complete else { return lines }
    lines += emitThrough(complete)
    return lines
  }

  /// Lines for every pending step, complete or not, and every pending event.
  func flush() -> [String] { emitThrough(pending.keys.max() ?? 0) + takeEvents(through: Int.max) }

  private func emitThrough(_ last: Int) -> [String] {
    var lines: [String] = []
    for step in pending.keys.sorted() where step <= last {
      if let recs = pending.removeValue(forKey: step) { lines.append(line(step: step, recs)) }
      lastPrinted = max(lastPrinted, step)
      lines += takeEvents(through: step)
    }
    return lines
  }

  /// Lines for the pending events of steps up to `step`, in arrival order.
  private func takeEvents(through step: Int) -> [String] {
    var lines: [String] = []
    pendingEvents.removeAll { e in
      guard e.step <= step else { return false }
      let text = e.text.isEmpty ? "" : " " + e.text
      lines.append("event rank \(e.rank) step \(e.step): \(e.kind.name)\(text)")
      return true
    }
    return lines
  }

  func line(step: Int, _ recs: [Int: StepRecord]) -> String {
    Self.line(step: step, records: recs.values.sorted { $0.rank < $1.rank }.map { ($0.rank, $0.metrics) },
              totalSteps: reader.info.totalSteps, tp: reader.info.tp, dp: reader.info.dp,
              expectedRanks: reader.ranks().filter { $0.attached }.count)
  }

  /// One step's line from its ranks' records: each field of the step field table that watch
  /// shows (`StepField.watch`), under that name; a field no rank reported (a writer that does
  /// not measure it leaves it 0) reads "-", never a measured zero.
  static func line(step: Int, records rs: [(rank: Int, metrics: StepMetrics)], totalSteps: Int, tp: Int, dp: Int,
                   expectedRanks: Int) -> String {
    let ms = rs.map(\.metrics)
    func field(_ name: String) -> StepField { StepFields.named(name)! }
    func shown(_ name: String, _ text: () -> String) -> String {
      let f = field(name)
      return "  \(f.watch!) " + (f.reported(in: ms) ? text() : "-")
    }
    func millis(_ ns: Double) -> String { String(format: "%.1f ms", ns / 1e6) }
    var s = "step \(step)"
    if totalSteps > 0 { s += "/\(totalSteps)" }
    // the loss, the learning rate and the global gradient norm are the same on every rank
    let first = rs.first?.metrics
    s += "  loss \(formatLoss(first?.loss))"
    s += shown("lr") { String(format: "%.2e", first?.lr ?? 0) }
    s += shown("grad_norm") { formatGradNorm(first?.gradNorm ?? 0) }
    // the job's rate: d × the mean of the replicas' (one TP rank each) rates
    let rate = StepMetrics.jobTokensPerSecond(replicaRates: rs.filter { $0.rank % max(tp, 1) == 0 }.map(\.metrics.tokensPerSecond),
                                              dp: dp)
    s += "  \(field("tokens_per_s").watch!) " + (rate.map { String(format: "%.0f", $0) } ?? "-")
    let stepNs = field("step_ns")
    if let slow = rs.max(by: { stepNs.value($0.metrics) < stepNs.value($1.metrics) }) {
      s += "  \(stepNs.watch!) r\(slow.rank) " + (stepNs.reported(in: ms) ? millis(stepNs.value(slow.metrics)) : "-")
    }
    let arMax = field("allreduce_max_ns")
    s += shown("allreduce_max_ns") { String(format: "%.3f ms", (ms.map(arMax.value).max() ?? 0) / 1e6) }
    // communication: the most any rank was blocked in it, and the most it hid behind computing
    let exposed = field("comm_ns")
    if let blocked = rs.max(by: { exposed.value($0.metrics) < exposed.value($1.metrics) }) {
      s += shown("comm_ns") { millis(exposed.value(blocked.metrics)) + " r\(blocked.rank)" }
      s += shown("comm_total_ns") { millis(Double(ms.map(\.commHiddenNs).max() ?? 0)) }
    }
    if rs.count < expectedRanks { s += "  (\(rs.count)/\(expectedRanks) ranks)" }
    return s
  }
}

// MARK: export

struct ExportJob: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "export", abstract: "Write every record still in the job's rings (or, for a job that is gone, every record of its stored run) as JSON lines, CSV or TensorBoard event files.")

  @Argument(help: "Job name, stored run name, or TensorBoard log directory.")
  var job: String
  @Option(help: "Output format: jsonl (the default) or csv; tfevents (a stored run as TensorBoard event files under --output DIR).")
  var format: String = "jsonl"
  @Option(name: [.short, .long], help: ArgumentHelp(
    "Output file (default or '-': standard output).",
    discussion: "A regular file is replaced atomically; a symbolic link, device or FIFO is written through."))
  var output: String?

  func validate() throws {
    guard SegmentName.isValid(job) || job.contains("/") || FileManager.default.fileExists(atPath: job) else {
      throw ValidationError(TelemetryError.invalidJobName(job).description)
    }
    guard TelemetryExport.Format(rawValue: format) != nil || format == "tfevents" else {
      throw ValidationError("--format must be jsonl, csv or tfevents, not '\(format)'")
    }
  }

  /// What export says of a name it finds nowhere: every place it looked.
  static func unknownName(_ name: String, in space: SegmentSpace, store: String) -> String {
    "nothing named '\(name)' to export: no job segment \(space.path(job: name)), no stored run in \(store), "
      + "no TensorBoard log directory (tptop ls and tptop runs list them)"
  }

  func run(in space: SegmentSpace) throws {
    let fmt = TelemetryExport.Format(rawValue: format) ?? .jsonl
    // a stored run, a TensorBoard log directory, or a run as event files (TensorBoardCommands.swift)
    if try exportFromStoreOrLogDirectory(job, in: space, format: format, output: output) { return }
    // neither a stored run nor a log directory: a live segment, or nothing of that name anywhere
    guard space.allJobs().contains(job) else { throw failure(Self.unknownName(job, in: space, store: StoreLocation.fromEnvironment().directory)) }
    let reader = try reportingErrors { try JobReader(job: job, in: space) }
    var out = ""
    if fmt == .csv { out += TelemetryExport.csvHeader + "\n" }
    var lost: UInt64 = 0
    var count = 0
    // dated on the wall clock, tensors by name: by the clock offset its recorder measured once
    // (so that every export of a record, live or stored, jsonl or csv, gives it the same unix_ns),
    // else by one measured now
    let tensorNames = reader.info.shards.map(\.name)
    let context = JobRuns.live(job)?.header.wallMinusBootNs.map { TelemetryExport.Context(wallMinusBootNs: $0, tensorNames: tensorNames) }
      ?? TelemetryExport.Context(tensorNames: tensorNames)
    for p in reader.poll() {
      lost += p.lost
      var records: [TelemetryRecord] = p.steps.map { .step($0) } + p.events.map { .event($0) } + p.tensorStats.map { .tensorStats($0) }
      records.sort { $0.index < $1.index }
      for r in records { out += TelemetryExport.line(r, format: fmt, context: context) + "\n" }
      count += records.count
    }
    let path = output ?? "-"
    do {
      try OutputFile.write(Array(out.utf8), to: path)
    } catch let e as OutputFile.Failure {
      throw failure(e.description)
    }
    if path != "-" {
      FileHandle.standardError.write(Data("exported \(count) records (\(lost) already overwritten) to \(path)\n".utf8))
    }
  }
}

// MARK: control

/// Polls `done` every 10 ms until it is true, the job ends, or `timeout` passes.
func waitFor(_ reader: JobReader, timeout: Double, _ done: ([RankStatus]) -> Bool) -> Bool {
  let deadline = Date().addingTimeInterval(timeout)
  while Date() < deadline {
    let rs = reader.ranks().filter { $0.attached }
    if !rs.isEmpty && done(rs) { return true }
    let st = reader.phase()
    if st.isTerminal && !st.endedCleanly { return false }
    usleep(10_000)
  }
  return false
}

/// The job a command for `job` reaches: `job` itself, or, when `job` is over (or its processes
/// are gone) and a supervisor restarted it, its live incarnation (said on stdout).
func followingRestarts(_ job: String, in space: SegmentSpace) -> String {
  guard let r = try? JobReader(job: job, in: space, requireDescription: false) else { return job }
  // over, or every process gone (a rank killed moments ago: not yet judged failed)
  let gone = r.phase().isTerminal || !r.ranks().contains(where: \.pidAlive)
  guard gone, let live = JobDirectory.liveIncarnation(of: job, in: space) else { return job }
  emit("job \(job) has ended; its supervisor restarted it as \(live): asking \(live)")
  return live
}

func controlCommand(_ requested: String, in space: SegmentSpace, _ desired: DesiredState, _ wait: WaitOptions) throws {
  let job = followingRestarts(requested, in: space)
  // control needs the header and control page only: a damaged job description does not block it
  let reader = try reportingErrors { try JobReader(job: job, in: space, requireDescription: false) }
  // a paused job resumes at the step it paused at (later acknowledgements come from later steps)
  let firstRank = reader.ranks().first { $0.attached }
  let pausedAt = firstRank.flatMap { $0.state == .paused && $0.ackedState == .pause ? $0.ackedStep : nil }
  let stepBefore = reader.ranks().filter(\.attached).map(\.lastStep).max() ?? 0
  let previous = try reportingErrors { try reader.request(desired) }
  let verb = desired == .run ? "resume" : desired.name
  // a job whose writer declared that it applies no control requests: said at once
  if desired != .run && reader.info.features.ignoresControl {
    throw failure("job \(job) says it applies no control requests (its loop never calls wait_while_paused): "
      + "the \(verb) request is written, but nothing will act on it")
  }
  if wait.noWait {
    emit("asked job \(job) to \(verb) (desired state was \(previous.name))")
    return
  }
  let ok = waitFor(reader, timeout: wait.timeout) { rs in JobPhase.applied(desired, by: rs.map(\.acknowledgement)) }
  guard ok else {
    // steps went on well past the request: the job does not honour it
    let stepAfter = reader.ranks().filter(\.attached).map(\.lastStep).max() ?? 0
    if desired != .run && stepAfter > stepBefore + 3 {
      throw failure("job \(job) does not honour \(verb): it took \(stepAfter - stepBefore) more steps after the request "
        + "(a loop that never calls wait_while_paused); the request stays on the control page")
    }
    throw failure("job \(job) did not acknowledge '\(verb)' within \(wait.timeout) s; " + pendingAdvice(reader, "will \(verb)"))
  }
  let step = reader.rankStatus(reader.ranks().first { $0.attached }?.rank ?? 0).ackedStep
  switch desired {
  case .pause where previous == .pause: emit("job \(job) paused at step \(step) (it had been asked to pause already)")
  case .run where previous == .run: emit("job \(job) runs at step \(step) (it was not asked to pause: nothing to resume)")
  case .pause: emit("job \(job) paused at step \(step)")
  case .run: emit("job \(job) resumed at step \(pausedAt ?? step)")
  case .stop: emit("job \(job) stopped at step \(step)")
  }
}

/// What an unanswered control request means and what to do: it stays on the control page and
/// applies when rank 0 reaches a step boundary; a stalled rank is named, with the ways out.
func pendingAdvice(_ reader: JobReader, _ outcome: String) -> String {
  var text = "the request stays pending: the job \(outcome) when rank 0 reaches a step boundary"
  if let s = reader.stallDiagnosis() {
    let pid = reader.rankStatus(s.rank).pid
    text += "; rank \(s.rank) looks stalled (\(s.detail)): `kill \(pid)` it or run the job under "
      + "`tptop launch --restart K --hang-timeout S`"
  } else {
    text += " (commands apply at step boundaries; check `tptop ls`)"
  }
  return text
}

/// The job and wait options of a run-state command.
struct RunStateOptions: ParsableArguments {
  @OptionGroup var target: JobArgument
  @OptionGroup var wait: WaitOptions
}

/// A command that asks a job for one run state; `run(in:)` writes the request and waits.
protocol RunStateCommand: SegmentCommand {
  /// The subcommand's name.
  static var name: String { get }
  /// Its one-line help.
  static var abstract: String { get }
  /// The state asked for.
  static var desired: DesiredState { get }
  var options: RunStateOptions { get }
}

extension RunStateCommand {
  static var configuration: CommandConfiguration { CommandConfiguration(commandName: name, abstract: abstract) }
  func run(in space: SegmentSpace) throws { try controlCommand(options.target.job, in: space, Self.desired, options.wait) }
}

struct PauseJob: RunStateCommand {
  static let (name, desired) = ("pause", DesiredState.pause)
  static let abstract = "Pause a job at its next step boundary (all ranks at the same step)."
  @OptionGroup var options: RunStateOptions
}

struct ResumeJob: RunStateCommand {
  static let (name, desired) = ("resume", DesiredState.run)
  static let abstract = "Resume a paused job."
  @OptionGroup var options: RunStateOptions
}

struct StopJob: RunStateCommand {
  static let (name, desired) = ("stop", DesiredState.stop)
  static let abstract = "Stop a job cleanly at its next step boundary (final: it cannot be resumed)."
  @OptionGroup var options: RunStateOptions
}

struct CheckpointJob: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "checkpoint", abstract: "Ask a job to save a checkpoint at its next step boundary.")
  @OptionGroup var target: JobArgument
  @OptionGroup var wait: WaitOptions

  func run(in space: SegmentSpace) throws {
    let job = followingRestarts(target.job, in: space)
    let reader = try reportingErrors { try JobReader(job: job, in: space) }
    // world rank 0 on its node; on another node's segment, that node's first rank
    let first = reader.ranks().first { $0.attached }?.rank ?? 0
    let before = reader.rankStatus(first).checkpointsSaved
    let n = try reportingErrors { try reader.requestCheckpoint() }
    if wait.noWait {
      emit("asked job \(job) for a checkpoint (request #\(n))")
      return
    }
    let ok = waitFor(reader, timeout: wait.timeout) { rs in rs.allSatisfy { $0.rank != first || $0.checkpointsSaved > before } }
    guard ok else {
      throw failure("job \(job) saved no checkpoint within \(wait.timeout) s (request #\(n)); " + pendingAdvice(reader, "will checkpoint"))
    }
    let s = reader.rankStatus(first)
    emit("job \(job) saved a checkpoint at step \(s.lastCheckpointStep)")
  }
}

// MARK: gc

struct CollectGarbage: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "gc",
    abstract: "Remove the segments of jobs that are gone (stale, or finished with every process exited), and segments that can never be read (truncated, or abandoned before they were ready).")
  @Flag(name: .customLong("dry-run"), help: "Only print what would be removed.")
  var dryRun = false
  @Option(name: .customLong("stale-after"), help: "Seconds without heartbeat (and no process) before a job counts as gone.")
  var staleAfter: Double = 5
  @Argument(help: "Only consider these jobs, by name or glob ('ux-*', as tptop ls takes it; default: every job on this machine).")
  var jobs: [String] = []

  func validate() throws {
    guard staleAfter >= 0 && staleAfter.isFinite else { throw ValidationError("--stale-after must be a non-negative number of seconds") }
    for j in jobs where !SegmentName.isValid(j) && !NamePattern.isGlob(j) { throw ValidationError(TelemetryError.invalidJobName(j).description) }
  }

  func run(in space: SegmentSpace) throws {
    let only = jobs.isEmpty ? [] : NamePattern.expand(jobs, among: space.allJobs())
    if !jobs.isEmpty && only.isEmpty {
      emit("nothing to remove (no job matches \(jobs.joined(separator: " ")))")
      return
    }
    let removed = JobDirectory.collectGarbage(in: space, dryRun: dryRun, staleAfter: staleAfter, only: only)
    if removed.isEmpty { emit("nothing to remove") }
    for r in removed { emit((dryRun ? "would remove " : "removed ") + space.path(job: r)) }
  }
}

// MARK: job filter

/// Which jobs `ls` (and the job picker, `attach`) show: by name, by state word, by owner.
struct JobFilter {
  /// The state words `--state` accepts (`JobSummary.stateWord`), and `live`.
  static let stateWords = JobPhase.Word.allCases.map(\.rawValue) + ["unreadable", "live"]
  /// The words `live` stands for: every phase that has not ended.
  static let liveWords = Set(JobPhase.liveWords.map(\.rawValue))

  var name: String?
  var states: Set<String>?
  var everyUser = false

  /// The words of a `--state` value; throws a `ValidationError` naming the unknown one.
  static func states(_ text: String) throws -> Set<String> {
    var out = Set<String>()
    for w in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !w.isEmpty {
      guard stateWords.contains(w) else {
        throw ValidationError("--state: unknown state '\(w)'; use \(stateWords.joined(separator: ", "))")
      }
      if w == "live" { out.formUnion(liveWords) } else { out.insert(w) }
    }
    guard !out.isEmpty else { throw ValidationError("--state needs a state, e.g. --state running,paused") }
    return out
  }

  func accepts(_ j: JobSummary) -> Bool {
    if !everyUser && !j.isMine { return false }
    if let states, !states.contains(j.stateWord) { return false }
    if let name, !name.isEmpty {
      if NamePattern.isGlob(name) ? !NamePattern.matches(name, j.name) : !j.name.contains(name) { return false }
    }
    return true
  }

  /// Why `hidden` were left out, counted by reason: "2 of other users (--all shows them), 5
  /// not matching 'exp-*' --state running".
  func describe(_ hidden: [JobSummary]) -> String {
    let others = everyUser ? 0 : hidden.filter { !$0.isMine }.count
    let unmatched = hidden.count - others
    var parts: [String] = []
    if others > 0 { parts.append("\(others) of other users (--all shows them)") }
    if unmatched > 0 {
      var what: [String] = []
      if let name, !name.isEmpty { what.append("'\(name)'") }
      if let states { what.append("--state \(states.sorted().joined(separator: ","))") }
      parts.append("\(unmatched) not matching \(what.joined(separator: " "))")
    }
    return parts.isEmpty ? "none" : parts.joined(separator: ", ")
  }
}

// MARK: name patterns

/// Job and run names on the command line: a name, or a glob (`*`, `?`, `[…]`, fnmatch(3)) that
/// `ls`, `gc` and `rm` all match the same way.
enum NamePattern {
  /// Whether `pattern` holds a glob character.
  static func isGlob(_ pattern: String) -> Bool { pattern.contains { "*?[".contains($0) } }

  /// Whether glob `pattern` matches the whole of `name`.
  static func matches(_ pattern: String, _ name: String) -> Bool { fnmatch(pattern, name, 0) == 0 }

  /// The names of `among` the patterns name: a glob its matches, a plain name itself when it is
  /// among them. In the order of `among`, each once.
  static func expand(_ patterns: [String], among names: [String]) -> [String] {
    names.filter { n in patterns.contains { isGlob($0) ? matches($0, n) : $0 == n } }
  }
}

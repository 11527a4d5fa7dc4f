// The run store side of tptrain: its flags, and world rank 0's recorder (RunStore's
// `RunRecorder`, a thread that reads the job's segment and writes the store; the training step
// never calls it).

import ArgumentParser
import Foundation
import JobSchema
import RunStore
import Telemetry
import TPEngine
import TrainingSetup

/// tptrain's run store and ring flags.
struct RecordOptions: ParsableArguments {
  @Flag(name: .customLong("no-record"), help: "Do not record this run in the run store ($TPTOP_RUNS, else $XDG_DATA_HOME/tptop/runs, else ~/.local/share/tptop/runs).")
  var noRecord = false
  @Option(name: .customLong("record-budget-mib"), help: "Store budget of this run in MiB (default 256): per-rank step rows are kept in min/mean/max buckets of several steps when the run is too long or wide for it; the job-level series is always kept per step.")
  var recordBudgetMiB: Int = 256
  @Option(name: .customLong("ring-slots"), help: "Telemetry ring slots per rank, a power of two from 16 to 1048576 (default 4096).")
  var ringSlots: Int = SegmentLayout.defaultSlotCount

  func validate() throws {
    guard ringSlots >= 16 && ringSlots <= 1 << 20 && ringSlots & (ringSlots - 1) == 0 else {
      throw ValidationError("--ring-slots must be a power of two from 16 to 1048576, not \(ringSlots)")
    }
    guard recordBudgetMiB >= 1 && recordBudgetMiB <= 1 << 20 else {
      throw ValidationError("--record-budget-mib must be from 1 to 1048576, not \(recordBudgetMiB)")
    }
  }
}

/// Starts recording job `job` (world rank 0 only, after the segment exists) and returns its
/// recorder. A store that cannot be opened prints one warning line and returns nil; training goes
/// on without recording.
func startRecording(job: String, in space: SegmentSpace, description: JobDescription, options: RecordOptions,
                    resumedFrom: (path: String, step: Int)?, settings: [String: String], quiet: Bool) -> RunRecorder? {
  let restart = resumedFrom != nil
  let location = StoreLocation.fromEnvironment()
  let (name, note) = location.runName(forJob: job, restart: restart)
  if let note, !quiet { printError("tptrain: " + note) }
  let budget = options.recordBudgetMiB << 20
  var header = RunHeader(
    name: name, job: job, writer: "tptrain", state: "starting", started: Date().timeIntervalSince1970,
    world: description.worldSize, tp: description.tp, dp: description.dp, totalSteps: description.totalSteps,
    preset: description.preset, budgetBytes: budget)
  header.model = description.model
  header.features = description.features
  header.commandLine = CommandLine.arguments.joined(separator: " ")
  header.recorderPid = getpid()
  header.bucketSteps = RunAccumulator.bucketSteps(steps: description.totalSteps, world: description.worldSize, budgetBytes: budget)
  header.settings = RunHeader.settings(fromArguments: Array(CommandLine.arguments.dropFirst())).merging(settings) { _, b in b }
  do {
    let r = try RunRecorder(job: job, in: space, location: location, header: header, reopen: restart || name != job && note == nil,
                            resumedFrom: resumedFrom, warn: { printError("tptrain: warning: " + $0) })
    r.start()
    if !quiet { print("tptrain: recording run \(name) in \(location.directory)") }
    return r
  } catch {
    printError("tptrain: warning: \(error); this run is not recorded, training goes on")
    return nil
  }
}

/// Writes what the rings still hold and the run's final state (world rank 0 of a recorded run;
/// nothing elsewhere).
func finishRecording(_ observer: TrainingObserver, state: JobPhase.Word) {
  guard let telemetry = observer as? TelemetryObserver, let r = telemetry.recorder else { return }
  r.finish(state: state)
  telemetry.recorder = nil
}

extension RunSetup.Settings {
  /// The resolved settings a comparison of runs shows (defaults included).
  var recorded: [String: String] {
    ["batch": "\(batch)", "seq": "\(seq)", "steps": "\(steps)", "seed": "\(seed)",
     "lr": "\(optimizer.learningRate)", "weight-decay": "\(optimizer.weightDecay)", "grad-clip": "\(optimizer.gradClip)",
     "beta1": "\(optimizer.beta1)", "beta2": "\(optimizer.beta2)"]
  }
}

import ArgumentParser
import Foundation
import Telemetry

/// `tptop-dev`: the project's own measuring and testing tools, apart from the product. The
/// benchmarks of `make bench`, the stress test's writer and reader, a synthetic job that obeys
/// the control page, and the table of step fields the Python writer is checked against; none
/// is installed.
struct TPTopDev: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tptop-dev",
    abstract: "Benchmarks and test fixtures of tptop (not installed).",
    subcommands: [
      BenchTelemetry.self, BenchDashboard.self, BenchScrape.self, BenchStore.self, StressWriter.self,
      StressReader.self, SyntheticJobCommand.self, StepFieldsCommand.self,
    ])
}

/// Prints `tptop-dev: <message>` on stderr and returns the exit code to throw.
func failure(_ message: String, code: Int32 = 1) -> ExitCode {
  FileHandle.standardError.write(Data(("tptop-dev: " + message + "\n").utf8))
  return ExitCode(code)
}

/// Prints one line on stderr.
func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Runs `body`, turning an error into one line on stderr and exit status 1.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
  do { return try body() } catch { throw failure("\(error)") }
}

/// Writes one line to stdout and flushes it (so pipes and CI logs see it at once).
func emit(_ line: String) {
  FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// A command that writes or reads segments, in the namespace `--namespace` named.
protocol SegmentCommand: ParsableCommand {
  func run(in space: SegmentSpace) throws
}

// `--namespace NAME` anywhere, as in tptop: the synthetic job then writes a segment of that namespace.
let taken: (namespace: String?, rest: [String])
do {
  taken = try NamespaceOption.take(Array(CommandLine.arguments.dropFirst()))
} catch {
  FileHandle.standardError.write(Data("tptop-dev: \(error)\n".utf8))
  exit(ExitCode.validationFailure.rawValue)
}
do {
  var command = try TPTopDev.parseAsRoot(taken.rest)
  if let scoped = command as? SegmentCommand {
    try scoped.run(in: SegmentSpace(namespace: taken.namespace))
  } else {
    try command.run()
  }
} catch {
  TPTopDev.exit(withError: error)
}

import ArgumentParser
import Foundation
import JobSchema
import Telemetry

/// `tptop`: watch and steer tensor-parallel training jobs.
struct TPTop: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tptop",
    abstract: "Watch and steer tensor-parallel GPT training jobs.",
    discussion: """
      Every command takes --namespace NAME: it then sees only the segments of that
      namespace (a node simulated with tptrain --simulate-nodes K, named node<n>).
      Without it, the default namespace: on world rank 0's machine, every rank of
      a job, also the ranks of other nodes (docs/TELEMETRY.md).
      """,
    version: "tptop \(ProjectVersion.string)",
    subcommands: dashboardSubcommands + jobSubcommands + runSubcommands + [SuperviseCommand.self, ServeCommand.self],
    defaultSubcommand: dashboardDefaultSubcommand)

  /// The first argument when it names no subcommand. Without this check the default subcommand
  /// would report a mistyped command as its own unexpected argument, with its own usage.
  static func unknownCommand(_ arguments: [String]) -> String? {
    guard let first = arguments.first, !first.hasPrefix("-"), first != "help" else { return nil }
    let names = configuration.subcommands.flatMap { [$0._commandName] + $0.configuration.aliases }
    return names.contains(first) ? nil : first
  }
}

/// A command that reads, steers or removes segments: run with the namespace `--namespace` named
/// (main below passes it in; no global holds it).
protocol SegmentCommand: ParsableCommand {
  func run(in space: SegmentSpace) throws
}

let arguments: [String]
let space: SegmentSpace
do {
  let taken = try NamespaceOption.take(Array(CommandLine.arguments.dropFirst()))
  space = SegmentSpace(namespace: taken.namespace)
  arguments = taken.rest
} catch {
  FileHandle.standardError.write(Data("tptop: \(error)\n".utf8))
  exit(ExitCode.validationFailure.rawValue)
}
// `--version` belongs to tptop itself; the default subcommand would refuse it as its own option.
if arguments == ["--version"] || arguments == ["version"] {
  print("tptop \(ProjectVersion.string)")
  exit(0)
}
if let word = TPTop.unknownCommand(arguments) {
  FileHandle.standardError.write(Data("""
    Error: unknown command '\(word)'
    Usage: \(TPTop.usageString())
      See 'tptop --help' for the commands.

    """.utf8))
  exit(ExitCode.validationFailure.rawValue)
}
do {
  var command = try TPTop.parseAsRoot(arguments)
  if let scoped = command as? SegmentCommand { try scoped.run(in: space) } else { try command.run() }
} catch {
  TPTop.exit(withError: error)
}

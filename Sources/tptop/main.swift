import ArgumentParser
import Foundation

/// `tptop`: watch and steer tensor-parallel training jobs.
struct TPTop: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tptop",
    abstract: "Watch and steer tensor-parallel GPT training jobs.",
    subcommands: dashboardSubcommands + jobSubcommands + [SuperviseCommand.self],
    defaultSubcommand: dashboardDefaultSubcommand)

  /// The first argument when it names no subcommand. Without this check the default subcommand
  /// would report a mistyped command as its own unexpected argument, with its own usage.
  static func unknownCommand(_ arguments: [String]) -> String? {
    guard let first = arguments.first, !first.hasPrefix("-"), first != "help" else { return nil }
    let names = configuration.subcommands.flatMap { [$0._commandName] + $0.configuration.aliases }
    return names.contains(first) ? nil : first
  }
}

if let word = TPTop.unknownCommand(Array(CommandLine.arguments.dropFirst())) {
  FileHandle.standardError.write(Data("""
    Error: unknown command '\(word)'
    Usage: \(TPTop.usageString())
      See 'tptop --help' for the commands.

    """.utf8))
  exit(ExitCode.validationFailure.rawValue)
}
TPTop.main()

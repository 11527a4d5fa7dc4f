import ArgumentParser

/// `tptop`: watch and steer tensor-parallel training jobs.
struct TPTop: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tptop",
    abstract: "Watch and steer tensor-parallel GPT training jobs.",
    subcommands: dashboardSubcommands + jobSubcommands + [SuperviseCommand.self],
    defaultSubcommand: dashboardDefaultSubcommand)
}

TPTop.main()

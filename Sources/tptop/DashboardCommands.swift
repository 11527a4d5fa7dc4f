import ArgumentParser

/// The interactive dashboard commands (demo, launch, attach).
let dashboardSubcommands: [ParsableCommand.Type] = []
let dashboardDefaultSubcommand: ParsableCommand.Type? = nil

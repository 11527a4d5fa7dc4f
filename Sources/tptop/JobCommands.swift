import ArgumentParser

/// Plain-text readers and the command-line control channel (ls, watch, export, pause, ...).
let jobSubcommands: [ParsableCommand.Type] = []

import Foundation

// For terminals curses cannot drive (TERM=dumb, no terminfo): each changed frame is printed as
// plain ASCII text, and keys are read as typed characters (line-buffered: type q, Enter). The end
// of standard input (a closed pipe, /dev/null, a script that ran out) detaches like q.

/// A line-printing screen.
public final class PlainBackend: ScreenBackend {
  public let size: (width: Int, height: Int)
  public let unicode = false
  private var last: CellGrid?
  private var pending: [Key] = []

  /// Creates a plain screen of `COLUMNS` × `LINES` (default 80 × 24).
  public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
    size = (Int(environment["COLUMNS"] ?? "") ?? 80, Int(environment["LINES"] ?? "") ?? 24)
  }

  public func present(_ grid: CellGrid) {
    guard grid != last else { return }
    last = grid
    var out = grid.text
    out += "\n" + String(repeating: "=", count: grid.width) + "\n"
    FileHandle.standardOutput.write(out.data(using: .utf8) ?? Data())
  }

  public func readKey(timeout: Double) -> Key? {
    if !pending.isEmpty { return pending.removeFirst() }
    var fds = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
    guard poll(&fds, 1, Int32(max(0, timeout) * 1000)) > 0 else { return nil }
    var buf = [UInt8](repeating: 0, count: 64)
    let n = read(0, &buf, 64)
    if n == 0 { return .endOfInput }
    if n < 0 { sleepSeconds(timeout); return nil }
    for b in buf.prefix(n) where b >= 0x20 && b < 0x7F { pending.append(.char(Character(Unicode.Scalar(b)))) }
    return pending.isEmpty ? nil : pending.removeFirst()
  }

  public func takeResize() -> Bool { false }
  public func apply(_ theme: Theme) { last = nil }
  public func shutdown() {}
}

/// Runs an interactive dashboard on the process's terminal.
public enum DashboardSession {
  /// Loads themes, takes over the terminal (curses, or plain text for TERM=dumb), runs until the
  /// user detaches, and restores the terminal. Returns the process exit status.
  public static func run(source: JobSource, options: DashboardOptions, themeName: String?) -> Int32 {
    // settings remembered from the last session (smoothing, log-y, lines, theme); --theme wins
    var options = options
    if options.settingsPath == nil { options.settingsPath = DashboardSettings.path() }
    let remembered = options.settingsPath.map { DashboardSettings.load(path: $0).0.theme } ?? nil
    let (backend, library, theme, problems) = open(themeName: themeName ?? remembered)
    let app = DashboardApp(source: source, backend: backend, library: library, theme: theme, options: options,
                           startupMessage: problems.first.map { "theme: " + $0 })
    app.run()
    backend.shutdown()
    return 0
  }

  /// Shows the job list and returns the picked job, or nil when the user quit.
  public static func pick(themeName: String?, list: () -> [JobListRow]) -> String? {
    let (backend, _, theme, _) = open(themeName: themeName)
    defer { backend.shutdown() }
    return JobPicker.run(backend: backend, theme: theme, list: list)
  }

  static func open(themeName: String?) -> (ScreenBackend, ThemeLibrary, Theme, [String]) {
    let env = ProcessInfo.processInfo.environment
    let library = ThemeLibrary(directories: ThemeLibrary.searchDirectories())
    var problems: [String] = library.problems
    var theme = library.themes[0]
    if let name = themeName {
      let (t, err) = library.resolve(name)
      if let t { theme = t }
      if let err { problems.insert(err, at: 0) }
    }
    for p in problems { FileHandle.standardError.write(("tptop: theme: " + p + "\n").data(using: .utf8)!) }
    let backend: ScreenBackend
    var reason = ""
    if env["TERM"] == "dumb" || env["TERM"] == nil {
      backend = PlainBackend(environment: env)
    } else if let c = CursesBackend(environment: env, reason: &reason) {
      backend = c
    } else {
      FileHandle.standardError.write("tptop: \(reason); showing plain text frames (type q and Enter to detach)\n".data(using: .utf8)!)
      backend = PlainBackend(environment: env)
    }
    return (backend, library, theme, problems)
  }
}

import Foundation

// The dashboard settings remembered between sessions (btop's way): smoothing, log-y, loss lines,
// grouping by node and the theme, in $XDG_CONFIG_HOME/tptop/tptop.conf (else
// ~/.config/tptop/tptop.conf) as commented `key = value` lines, written whenever one changes.

/// What the dashboard remembers between sessions.
public struct DashboardSettings: Equatable, Sendable {
  /// Index into `AppState.smoothingWeights`.
  public var smoothingIndex = AppState().smoothingIndex
  public var logY = false
  public var perRankLines = false
  public var groupByNode = false
  /// Theme name; nil: the default theme.
  public var theme: String?

  /// Default settings.
  public init() {}

  /// The settings of an interaction state and theme.
  public init(_ s: AppState, theme: String?) {
    smoothingIndex = s.smoothingIndex
    logY = s.logY
    perRankLines = s.perRankLines
    groupByNode = s.groupByNode
    self.theme = theme
  }

  /// `state` with these settings applied.
  public func applied(to state: AppState) -> AppState {
    var s = state
    s.smoothingIndex = smoothingIndex
    s.logY = logY
    s.perRankLines = perRankLines
    s.groupByNode = groupByNode
    return s
  }

  /// The settings file: `$XDG_CONFIG_HOME/tptop/tptop.conf`, else `$HOME/.config/tptop/tptop.conf`;
  /// nil without either variable.
  public static func path(environment env: [String: String] = ProcessInfo.processInfo.environment) -> String? {
    if let x = env["XDG_CONFIG_HOME"], x.hasPrefix("/") { return x + "/tptop/tptop.conf" }
    if let h = env["HOME"], !h.isEmpty { return h + "/.config/tptop/tptop.conf" }
    return nil
  }

  /// Parses a settings file. Unknown keys and bad values are reported as `line N: problem` and
  /// skipped (the rest still applies).
  public static func parse(_ text: String) -> (DashboardSettings, [String]) {
    var s = DashboardSettings()
    var problems: [String] = []
    for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
      guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
      let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
      guard parts.count == 2 else { problems.append("line \(i + 1): expected key = value"); continue }
      let (key, value) = (parts[0], parts[1])
      func flag() -> Bool? {
        switch value.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: problems.append("line \(i + 1): \(key) must be true or false, not '\(value)'"); return nil
        }
      }
      switch key {
      case "smoothing":
        if let w = Double(value), let k = AppState.smoothingWeights.firstIndex(of: w) { s.smoothingIndex = k } else {
          problems.append("line \(i + 1): smoothing must be one of \(AppState.smoothingWeights.map { "\($0)" }.joined(separator: ", ")), not '\(value)'")
        }
      case "log_y": if let f = flag() { s.logY = f }
      case "per_rank_lines": if let f = flag() { s.perRankLines = f }
      case "group_by_node": if let f = flag() { s.groupByNode = f }
      case "theme": s.theme = value.isEmpty ? nil : value
      default: problems.append("line \(i + 1): unknown key '\(key)'")
      }
    }
    return (s, problems)
  }

  /// The file's text.
  public var text: String {
    """
    # tptop dashboard settings, rewritten when they change in the dashboard (s, l, m, n, t)
    smoothing = \(AppState.smoothingWeights[smoothingIndex % AppState.smoothingWeights.count])
    log_y = \(logY)
    per_rank_lines = \(perRankLines)
    group_by_node = \(groupByNode)
    theme = \(theme ?? "")

    """
  }

  /// Reads the file at `path` (defaults when it does not exist); problems as `path: line N: …`.
  public static func load(path: String) -> (DashboardSettings, [String]) {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return (DashboardSettings(), []) }
    let (s, problems) = parse(text)
    return (s, problems.map { "\(path): \($0)" })
  }

  /// Writes the file (creating its directory); a failure is returned as one line, not thrown:
  /// settings that cannot be kept never stop the dashboard.
  @discardableResult
  public func save(path: String) -> String? {
    do {
      try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try text.write(toFile: path, atomically: true, encoding: .utf8)
      return nil
    } catch {
      return "cannot save settings to \(path): \(error.localizedDescription)"
    }
  }
}

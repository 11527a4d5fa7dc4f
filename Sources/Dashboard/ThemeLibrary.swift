import Foundation

// Finding and loading theme files. Search order: $TPTOP_THEMES, <dir of executable>/../../themes
// (a SwiftPM build directory inside the package), <dir of executable>/../share/tptop/themes, and
// ./themes. The built-in default is always available.

/// The themes available to the dashboard, default first, plus any problems found loading them.
public struct ThemeLibrary: Sendable {
  /// Loaded themes; the first is `default`.
  public private(set) var themes: [Theme]
  /// One line per file that failed to load ("file:line: message").
  public private(set) var problems: [String]

  /// Directories searched, in order.
  public static func searchDirectories(environment: [String: String] = ProcessInfo.processInfo.environment,
                                       executablePath: String = CommandLine.arguments.first ?? "") -> [String] {
    var dirs: [String] = []
    if let e = environment["TPTOP_THEMES"], !e.isEmpty { dirs += e.split(separator: ":").map(String.init) }
    // The executable as invoked (.build/release/tptop) and as resolved (SwiftPM's real directory
    // is .build/<triple>/release, one level deeper).
    var exeDirs: [URL] = []
    if executablePath.contains("/") { exeDirs.append(URL(fileURLWithPath: executablePath).deletingLastPathComponent()) }
    if let real = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"), executablePath == (CommandLine.arguments.first ?? "") {
      exeDirs.append(URL(fileURLWithPath: real).deletingLastPathComponent())
    }
    for exe in exeDirs { dirs.append(exe.appendingPathComponent("../../themes").standardized.path) }
    for exe in exeDirs { dirs.append(exe.appendingPathComponent("../share/tptop/themes").standardized.path) }
    if let real = exeDirs.last, exeDirs.count > 1 || !executablePath.contains("/") {
      dirs.append(real.appendingPathComponent("../../../themes").standardized.path)
    }
    dirs.append(FileManager.default.currentDirectoryPath + "/themes")
    var seen = Set<String>()
    return dirs.filter { seen.insert($0).inserted }
  }

  /// Loads every `*.theme` in `directories`; earlier directories win on name clashes.
  public init(directories: [String]) {
    var byName: [String: Theme] = [:]
    var order: [String] = []
    var problems: [String] = []
    for dir in directories {
      guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { continue }
      for file in names.sorted() where file.hasSuffix(".theme") {
        let name = String(file.dropLast(6))
        if byName[name] != nil { continue }
        let path = dir + "/" + file
        do {
          let theme = try ThemeLibrary.load(path: path, name: name)
          byName[name] = theme
          order.append(name)
        } catch {
          problems.append("\(error)")
          byName[name] = nil
        }
      }
    }
    var list = [byName["default"] ?? Theme.builtIn]
    for n in order where n != "default" { list.append(byName[n]!) }
    themes = list
    self.problems = problems
  }

  /// Reads and parses one theme file.
  public static func load(path: String, name: String) throws -> Theme {
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
      throw ThemeError(file: path, line: 0, message: "cannot read file")
    }
    return try Theme.parse(text, name: name, file: path)
  }

  /// The theme called `name`, a theme file given by path, or nil with a one-line reason.
  public func resolve(_ name: String) -> (Theme?, String?) {
    if let t = themes.first(where: { $0.name == name }) { return (t, nil) }
    if name.hasSuffix(".theme") || name.contains("/") {
      do { return (try ThemeLibrary.load(path: name, name: URL(fileURLWithPath: name).deletingPathExtension().lastPathComponent), nil) }
      catch { return (nil, "\(error); using the default theme") }
    }
    if let p = problems.first(where: { $0.contains("/\(name).theme:") }) { return (nil, "\(p); using the default theme") }
    let known = themes.map(\.name).joined(separator: ", ")
    return (nil, "unknown theme `\(name)` (available: \(known)); using the default theme")
  }
}

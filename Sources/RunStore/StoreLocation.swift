// Where runs are kept, and how a run's name becomes a file: `$TPTOP_RUNS`, else
// `$XDG_DATA_HOME/tptop/runs`, else `~/.local/share/tptop/runs`; one `<run>.sqlite` per run.

import Foundation
import JobSchema

/// A store problem, as one line for the user.
public struct StoreError: Error, CustomStringConvertible, Sendable {
  public let description: String
  public init(_ d: String) { description = d }
}

/// The run store's directory.
public struct StoreLocation: Sendable, Equatable {
  /// The directory (it may not exist yet).
  public let directory: String

  public init(directory: String) { self.directory = directory }

  /// The directory the environment names (see the file comment).
  public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> StoreLocation {
    if let d = env["TPTOP_RUNS"], !d.isEmpty { return StoreLocation(directory: d) }
    if let x = env["XDG_DATA_HOME"], !x.isEmpty { return StoreLocation(directory: x + "/tptop/runs") }
    let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
    return StoreLocation(directory: home + "/.local/share/tptop/runs")
  }

  /// The database file of run `name`.
  public func path(run name: String) -> String { directory + "/" + name + StoreSchema.fileSuffix }

  /// Whether `name` can name a run file: 1–80 characters from `A-Z a-z 0-9 . _ -`, not
  /// starting with a dot (job names are a subset).
  public static func isValidRunName(_ name: String) -> Bool {
    guard !name.isEmpty, name.utf8.count <= 80, name.first != "." else { return false }
    return name.unicodeScalars.allSatisfy { c in
      (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "." || c == "_" || c == "-"
    }
  }

  /// Creates the directory (and its parents) when missing.
  /// - Throws: `StoreError` when it cannot be created or is not a directory.
  public func prepare() throws {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
      guard isDir.boolValue else { throw StoreError("run store \(directory) is not a directory") }
      // (access(2) says EROFS on a read-only file system, also to root, whom modes do not stop)
      guard access(directory, W_OK) == 0 else {
        throw StoreError("run store \(directory) is not writable (\(String(cString: strerror(errno)))); "
          + "set TPTOP_RUNS to a writable directory")
      }
      removeAbandonedCreations()
      return
    }
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
      throw StoreError("cannot create the run store \(directory): \((error as NSError).localizedDescription)")
    }
  }

  /// Removes what a recorder killed while it created a run left: `<run>.sqlite.creating-<pid>`
  /// (and its `-wal`, `-shm`) of a process that is gone, untouched for a minute (creation takes
  /// milliseconds; the age spares another host's recorder on a shared directory). Never a run.
  /// Returns the names removed.
  @discardableResult
  public func removeAbandonedCreations(olderThan age: Double = 60) -> [String] {
    let marker = StoreSchema.fileSuffix + ".creating-"
    var removed: [String] = []
    for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
      guard let r = name.range(of: marker) else { continue }
      let pidText = name[r.upperBound...].prefix { $0.isNumber }
      guard ["", "-wal", "-shm", "-journal"].contains(String(name[r.upperBound...].dropFirst(pidText.count))),
            let pid = Int32(pidText), pid > 0, kill(pid, 0) != 0 && errno == ESRCH else { continue }
      var st = stat()
      let path = directory + "/" + name
      guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
            Date().timeIntervalSince1970 - Double(st.st_mtim.tv_sec) >= age else { continue }
      if unlink(path) == 0 { removed.append(name) }
    }
    return removed
  }

  /// The names of the runs stored, sorted.
  public func runNames() -> [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return files.filter { $0.hasSuffix(StoreSchema.fileSuffix) }
      .map { String($0.dropLast(StoreSchema.fileSuffix.count)) }
      .filter(Self.isValidRunName).sorted()
  }

  /// Whether run `name` exists.
  public func exists(run name: String) -> Bool { FileManager.default.fileExists(atPath: path(run: name)) }

  /// Deletes run `name` (its database and WAL files).
  /// - Throws: `StoreError` when the run does not exist or cannot be removed.
  public func remove(run name: String) throws {
    guard Self.isValidRunName(name), exists(run: name) else { throw StoreError("no stored run named '\(name)'") }
    let p = path(run: name)
    for f in [p, p + "-wal", p + "-shm"] where FileManager.default.fileExists(atPath: f) {
      do { try FileManager.default.removeItem(atPath: f) } catch {
        throw StoreError("cannot remove \(f): \((error as NSError).localizedDescription)")
      }
    }
  }

  /// The run name a job records under, and a note when it differs from the job's name.
  ///
  /// A restart of the same job is the same run: a supervisor incarnation (`<job>.r<k>`, or
  /// `<job>.r<k>.<hex>`: JobSchema's `IncarnationName`) records into `<job>`, and so does a job
  /// started with `restart` (tptrain's `--resume`). Any other job whose name a stored run
  /// already has gets the first free suffix `-2`, `-3`, … and says so.
  public func runName(forJob job: String, restart: Bool) -> (name: String, note: String?) {
    let (base, incarnation) = IncarnationName.parse(job)
    let isRestart = restart || incarnation >= 1
    if !exists(run: base) || isRestart { return (base, nil) }
    var k = 2
    while exists(run: "\(base)-\(k)") { k += 1 }
    let name = "\(base)-\(k)"
    return (name, "a stored run named '\(base)' exists; this job is recorded as '\(name)'")
  }
}

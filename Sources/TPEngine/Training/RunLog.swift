// The --log file: one JSON object per step, `{"step":N,...}`. A fresh run starts it empty; a
// resumed run (--resume, every supervised restart) continues it, so the file reads as one run.

import Glibc

/// Opening the per-step log for a run that starts after step `startStep`.
public enum RunLog {
  /// Opens `path` for the run's lines. `startStep` 0: truncated, as a fresh run's. Otherwise the
  /// lines of steps up to `startStep` are kept and the rest (steps the resumed run will redo,
  /// and a line cut short by a crash) dropped, then the run appends; a log that is not a regular
  /// file (a device, a FIFO) is appended to as it is.
  /// - Throws: `EngineError` naming the file and the reason.
  public static func open(_ path: String, startStep: Int) throws -> UnsafeMutablePointer<FILE> {
    if startStep > 0 {
      var st = stat()
      if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG {
        let keep = try keptBytes(path, through: startStep)
        if truncate(path, off_t(keep)) != 0 {
          throw EngineError("cannot trim the log \(path) to step \(startStep): \(String(cString: strerror(errno)))")
        }
      }
    }
    guard let f = fopen(path, startStep > 0 ? "a" : "w") else {
      throw EngineError("cannot open log file \(path): \(String(cString: strerror(errno)))")
    }
    return f
  }

  /// Bytes of the log at `path` that hold whole lines of steps ≤ `step`: up to the first line
  /// of a later step, or the first line that does not end in a newline.
  static func keptBytes(_ path: String, through step: Int) throws -> Int {
    guard let f = fopen(path, "r") else {
      throw EngineError("cannot read the log \(path) to continue it: \(String(cString: strerror(errno)))")
    }
    defer { fclose(f) }
    var line: UnsafeMutablePointer<CChar>? = nil
    var capacity = 0
    defer { free(line) }
    var kept = 0
    while true {
      let n = getline(&line, &capacity, f)
      guard n > 0, let text = line, text[n - 1] == 0x0A else { break }
      if let s = stepOfLine(text, length: n), s > step { break }
      kept += n
    }
    return kept
  }

  /// N of a line starting `{"step":N`, else nil.
  static func stepOfLine(_ text: UnsafeMutablePointer<CChar>, length: Int) -> Int? {
    let prefix = Array("{\"step\":".utf8)
    guard length > prefix.count else { return nil }
    for (i, c) in prefix.enumerated() where UInt8(bitPattern: text[i]) != c { return nil }
    var value = 0
    var i = prefix.count
    var digits = 0
    while i < length {
      let d = UInt8(bitPattern: text[i])
      guard d >= 0x30 && d <= 0x39 && digits < 18 else { break }
      value = value * 10 + Int(d - 0x30)
      i += 1
      digits += 1
    }
    return digits > 0 ? value : nil
  }
}

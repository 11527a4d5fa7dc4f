import Foundation

/// Runs shell commands as another local user (uid and gid 65534, `nobody`), as an attacker on the
/// same machine would: `setpriv --reuid=65534 --regid=65534 --clear-groups`. Needs root and
/// util-linux's setpriv; without them a test throws `MissingTool.error` (a failure under CI).
public enum SecondUser {
  /// The other user's uid.
  public static let uid: UInt32 = 65534

  /// The setpriv executable, or a `MissingTool` error.
  public static func setpriv() throws -> String {
    try MissingTool.require(geteuid() == 0, "root, to act as uid \(uid) (setpriv)")
    guard let path = ["/usr/bin/setpriv", "/bin/setpriv"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
      throw MissingTool.error("setpriv (util-linux), to act as uid \(uid)")
    }
    return path
  }

  /// Runs `/bin/sh -c script` as uid 65534 with `input` on its standard input; returns its exit
  /// status and its output (stdout and stderr together).
  @discardableResult
  public static func run(_ script: String, input: Data = Data()) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try setpriv())
    p.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "/bin/sh", "-c", script]
    let inPipe = Pipe(), outPipe = Pipe()
    p.standardInput = inPipe
    p.standardOutput = outPipe
    p.standardError = outPipe
    try p.run()
    inPipe.fileHandleForWriting.write(input)
    try inPipe.fileHandleForWriting.close()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self))
  }
}

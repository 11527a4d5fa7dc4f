import Foundation
import Glibc
import TestSupport
import XCTest

/// A `tptop serve` process started by a test, on a port the kernel picked.
final class ServeProcess {
  let process = Process()
  let port: Int
  private let output = Pipe()

  /// Starts `tptop serve --listen 127.0.0.1:0 <args>` and waits for its start-up line.
  init(_ args: [String], environment: [String: String]? = nil) throws {
    process.executableURL = URL(fileURLWithPath: try BuildProducts.path("tptop"))
    process.arguments = ["serve", "--listen", "127.0.0.1:0"] + args
    if let environment { process.environment = environment }
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let line = Self.readLine(output.fileHandleForReading)
    // "serving … at http://127.0.0.1:PORT/metrics …"
    guard let r = line.range(of: "http://127.0.0.1:"), let p = Int(line[r.upperBound...].prefix { $0.isNumber }) else {
      process.terminate()
      throw SampleError("no start-up line from tptop serve: '\(line)'")
    }
    port = p
  }

  static func readLine(_ h: FileHandle) -> String {
    var bytes: [UInt8] = []
    while true {
      let d = h.readData(ofLength: 1)
      if d.isEmpty || d.first == UInt8(ascii: "\n") { break }
      bytes.append(d.first!)
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  func stop() {
    if process.isRunning {
      process.terminate()
      process.waitUntilExit()
    }
  }

  deinit { stop() }
}

/// A raw HTTP/1.1 exchange on loopback, with a receive timeout: the status, the headers
/// (lower-cased names) and the body.
struct HTTPReply {
  var status: Int
  var headers: [String: String]
  var body: String
}

/// A TCP connection to 127.0.0.1:`port` (nil when it cannot connect).
func connectLoopback(_ port: Int, timeout: Double = 5) -> Int32? {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return nil }
  var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
  var addr = sockaddr_in()
  addr.sin_family = sa_family_t(AF_INET)
  addr.sin_port = in_port_t(UInt16(port).bigEndian)
  addr.sin_addr.s_addr = inet_addr("127.0.0.1")
  let ok = withUnsafePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
  if ok != 0 {
    close(fd)
    return nil
  }
  return fd
}

func sendAll(_ fd: Int32, _ text: String) -> Bool {
  let bytes = Array(text.utf8)
  var off = 0
  while off < bytes.count {
    let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    if n <= 0 { return false }
    off += n
  }
  return true
}

/// Sends one request with `Connection: close` and reads the reply to the end.
func http(_ port: Int, _ method: String = "GET", _ path: String, headers: [String: String] = [:], timeout: Double = 5) throws -> HTTPReply {
  guard let fd = connectLoopback(port, timeout: timeout) else { throw SampleError("cannot connect to port \(port)") }
  defer { close(fd) }
  var req = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
  for (k, v) in headers { req += "\(k): \(v)\r\n" }
  req += "\r\n"
  guard sendAll(fd, req) else { throw SampleError("cannot send to port \(port)") }
  var data: [UInt8] = []
  var buf = [UInt8](repeating: 0, count: 65536)
  while true {
    let n = recv(fd, &buf, buf.count, 0)
    if n < 0 { throw SampleError("no reply within \(timeout) s (\(method) \(path))") }
    if n == 0 { break }
    data += buf[0..<n]
  }
  let text = String(decoding: data, as: UTF8.self)
  guard let split = text.range(of: "\r\n\r\n") else { throw SampleError("malformed reply: \(text.prefix(200))") }
  let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
  let status = Int(lines[0].split(separator: " ")[1]) ?? 0
  var headers: [String: String] = [:]
  for l in lines.dropFirst() {
    if let c = l.firstIndex(of: ":") {
      headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
    }
  }
  return HTTPReply(status: status, headers: headers, body: String(text[split.upperBound...]))
}

/// The absolute path of `tool` on PATH, or nil.
func which(_ tool: String) -> String? {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
  return (path.split(separator: ":").map { "\($0)/\(tool)" } + ["/usr/sbin/\(tool)", "/usr/bin/\(tool)"])
    .first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Runs `tool args` to completion: status, stdout, stderr.
func runTool(_ tool: String, _ args: [String], environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: tool)
  p.arguments = args
  if let environment { p.environment = environment }
  let out = Pipe(), err = Pipe()
  p.standardOutput = out
  p.standardError = err
  try p.run()
  let errData = LockedData()
  let errHandle = err.fileHandleForReading
  let reader = Thread { errData.set(errHandle.readDataToEndOfFile()) }
  reader.start()
  let o = out.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  let e = errData.wait()
  return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

final class LockedData: @unchecked Sendable {
  private let cond = NSCondition()
  private var data: Data?
  func set(_ d: Data) {
    cond.lock()
    data = d
    cond.broadcast()
    cond.unlock()
  }
  func wait() -> Data {
    cond.lock()
    defer { cond.unlock() }
    while data == nil { cond.wait() }
    return data!
  }
}

// Where `tptop serve` listens: `HOST:PORT`, with IPv6 hosts in brackets (`[::1]:9400`). Loopback
// by default; any other address only when named explicitly.

import Glibc

/// A parsed `--listen` value.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
  /// The default: loopback only, DCGM exporter's neighbour port.
  public static let `default` = ListenAddress(host: "127.0.0.1", port: 9400)

  /// A numeric IPv4 or IPv6 address, or `localhost`.
  public var host: String
  /// TCP port, 0...65535 (0: the kernel picks one).
  public var port: Int

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// `127.0.0.1:9400`, `[::1]:9400`.
  public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

  /// Whether only this machine can connect (127.0.0.0/8, ::1, localhost).
  public var isLoopback: Bool {
    if host == "localhost" || host == "::1" { return true }
    var v4 = in_addr()
    if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
    return false
  }

  /// Parses `HOST:PORT`.
  /// - Throws: `ListenAddress.Invalid` with one line naming the problem and the fix.
  public static func parse(_ text: String) throws -> ListenAddress {
    let example = "use HOST:PORT, e.g. 127.0.0.1:9400, 0.0.0.0:9400 or [::1]:9400"
    let host: Substring
    let portText: Substring
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
        throw Invalid("invalid --listen '\(text)': \(example)")
      }
      host = text[text.index(after: text.startIndex)..<close]
      portText = text[text.index(close, offsetBy: 2)...]
    } else {
      guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
        throw Invalid("invalid --listen '\(text)': \(example)")
      }
      host = text[..<colon]
      portText = text[text.index(after: colon)...]
    }
    guard let port = Int(portText), (0...65535).contains(port), portText.allSatisfy(\.isASCII) else {
      throw Invalid("invalid --listen '\(text)': the port must be a number in 0...65535 (\(example))")
    }
    let h = String(host)
    guard h == "localhost" || isNumericAddress(h) else {
      throw Invalid("invalid --listen '\(text)': the host must be a numeric IPv4 or IPv6 address or localhost (\(example))")
    }
    return ListenAddress(host: h, port: port)
  }

  static func isNumericAddress(_ h: String) -> Bool {
    var v4 = in_addr()
    var v6 = in6_addr()
    return inet_pton(AF_INET, h, &v4) == 1 || inet_pton(AF_INET6, h, &v6) == 1
  }

  /// A bad `--listen` value, as one line.
  public struct Invalid: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
  }
}

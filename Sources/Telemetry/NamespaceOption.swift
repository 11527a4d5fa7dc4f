/// `--namespace NAME` (or `--namespace=NAME`), accepted by every command of tptop and tptop-dev
/// anywhere before `--`:
/// the command then sees only the segments of that namespace (those of a node simulated with
/// `tptrain --simulate-nodes`, `node<n>`). Taken out of the arguments before they are parsed.
public enum NamespaceOption {
  public static let flag = "--namespace"

  /// The namespace named in `arguments` (nil: the default one), and the other arguments.
  /// - Throws: a one-line message for a missing or invalid name.
  public static func take(_ arguments: [String]) throws -> (namespace: String?, rest: [String]) {
    var rest: [String] = []
    var namespace: String? = nil
    var i = 0
    while i < arguments.count {
      let a = arguments[i]
      if a == "--" {
        rest += arguments[i...]
        break
      }
      if a == flag || a.hasPrefix(flag + "=") {
        let value: String
        if a == flag {
          guard i + 1 < arguments.count else { throw NamespaceError("--namespace needs a name, e.g. --namespace node1") }
          value = arguments[i + 1]
          i += 2
        } else {
          value = String(a.dropFirst(flag.count + 1))
          i += 1
        }
        guard SegmentName.isValidNamespace(value) else {
          throw NamespaceError("invalid --namespace '\(value)': use 1–32 characters from A-Z a-z 0-9 _ -")
        }
        namespace = value
        continue
      }
      rest.append(a)
      i += 1
    }
    return (namespace, rest)
  }
}

/// A bad `--namespace`, as one line.
public struct NamespaceError: Error, CustomStringConvertible {
  public let description: String
  init(_ d: String) { description = d }
}

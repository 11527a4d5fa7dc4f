// What each request gets, decided from its method and path alone. The endpoint is read-only:
// no route reaches a job's control page.

/// The answer to one request.
public enum Route: Equatable, Sendable {
  /// `GET /metrics`: the exposition.
  case metrics
  /// `GET /healthz`: 200 while the server runs.
  case health
  /// A known path with a method other than GET or HEAD: 405.
  case methodNotAllowed
  /// Any other path: 404.
  case notFound

  /// The methods every known path allows (the `Allow` header of a 405).
  public static let allowed = "GET, HEAD"

  /// The route for `method` and `uri` (its query string ignored).
  public static func resolve(method: String, uri: String) -> Route {
    let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
    let found: Route
    switch path {
    case "/metrics": found = .metrics
    case "/healthz": found = .health
    default: return .notFound
    }
    return method == "GET" || method == "HEAD" ? found : .methodNotAllowed
  }
}

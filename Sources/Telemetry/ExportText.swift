// The export's quoting rules, public for the other exports (a stored run's, a TensorBoard log
// directory's), so every export quotes alike.

extension TelemetryExport {
  /// `s` as a JSON string literal, quotes included.
  public static func jsonText(_ s: String) -> String { jsonString(s) }
  /// `s` as one CSV cell (quoted when it holds a comma, quote or line break).
  public static func csvCell(_ s: String) -> String { csvField(s) }
}

import Telemetry

extension TelemetrySource {
  /// A ring's event record as the dashboard shows it (the live source's own mapping), for the
  /// other sources (a stored run).
  public static func jobEvent(_ e: EventRecord, wallTime: Double) -> JobEvent { event(e, wallTime: wallTime) }
}

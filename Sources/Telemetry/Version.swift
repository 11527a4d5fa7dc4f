public enum TelemetryVersion { public static let major: UInt32 = 1 }

import Foundation

/// The executables built beside the test bundle (`tptop`, `tptrain`).
public enum BuildProducts {
  /// The directory holding the built products.
  public static var directory: URL {
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
      return bundle.bundleURL.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  }

  /// The path of product `name`; throws `MissingTool.error` when it was not built.
  public static func path(_ name: String) throws -> String {
    let p = directory.appendingPathComponent(name).path
    guard FileManager.default.isExecutableFile(atPath: p) else {
      throw MissingTool.error("the \(name) executable next to the tests (swift build --product \(name))")
    }
    return p
  }
}

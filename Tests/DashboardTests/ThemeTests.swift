import XCTest
@testable import Dashboard

final class ThemeTests: XCTestCase {
  var packageRoot: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
  }

  func testBuiltInAndShippedThemesParse() throws {
    XCTAssertEqual(Theme.builtIn.name, "default")
    XCTAssertNoThrow(try Theme.parse(Theme.builtInText, name: "default", file: "<built-in>"))
    let lib = ThemeLibrary(directories: [packageRoot + "/themes"])
    XCTAssertEqual(lib.problems, [])
    let names = Set(lib.themes.map(\.name))
    XCTAssertTrue(names.isSuperset(of: ["default", "light", "mono", "colorblind"]), "\(names)")
    XCTAssertEqual(lib.themes.first?.name, "default")
    // The shipped default file and the compiled-in default agree.
    XCTAssertEqual(lib.themes.first?.looks, Theme.builtIn.looks)
    XCTAssertTrue(lib.themes.first { $0.name == "mono" }!.monochrome)
  }

  func testGoodFileValues() throws {
    let t = try Theme.parse("""
      # comment
      foreground = #102030
      background = black
      error = 196 on default bold   # inline comment
      rank_palette = red, green, blue
      latency_gradient = #000000, #ffffff
      """, name: "x", file: "x.theme")
    XCTAssertEqual(t.look(.normal).foreground, .rgb(0x10, 0x20, 0x30))
    XCTAssertEqual(t.look(.normal).background, .index(0))
    XCTAssertEqual(t.look(.error).foreground, .index(196))
    XCTAssertTrue(t.look(.error).attributes.contains(.bold))
    XCTAssertEqual(t.look(.rank(3)).foreground, .index(1))  // palette repeats
    XCTAssertEqual(t.look(.lat0).foreground, .rgb(0, 0, 0))
    XCTAssertEqual(t.look(.lat4).foreground, .rgb(255, 255, 255))
    // Unset slots take the foreground colour.
    XCTAssertEqual(t.look(.accent).foreground, .rgb(0x10, 0x20, 0x30))
  }

  func testBrokenFileNamesFileAndLine() {
    let cases: [(String, Int, String)] = [
      ("foreground = #fff\nbogus", 2, "expected `key = value`"),
      ("# ok\n\nwarp_drive = red", 3, "unknown key `warp_drive`"),
      ("accent = chartreuse", 1, "unknown colour or attribute `chartreuse`"),
      ("a = b\n", 1, "unknown key"),
      ("rank_palette = 1,2,3,4,5,6,7,8,9", 1, "takes 1 to 8"),
      ("header = white on", 1, "`on` must be followed"),
    ]
    for (text, line, msg) in cases {
      XCTAssertThrowsError(try Theme.parse(text, name: "b", file: "/t/broken.theme")) { e in
        guard let te = e as? ThemeError else { return XCTFail("\(e)") }
        XCTAssertEqual(te.line, line, text)
        XCTAssertTrue(te.description.hasPrefix("/t/broken.theme:\(line): "), te.description)
        XCTAssertTrue(te.message.contains(msg), te.message)
      }
    }
  }

  func testBrokenFileFallsBackToDefault() throws {
    let dir = NSTemporaryDirectory() + "tptop-theme-test-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try "foreground = #ffffff\nselection = nope on black\n".write(toFile: dir + "/broken.theme", atomically: true, encoding: .utf8)
    try "foreground = red\n".write(toFile: dir + "/fine.theme", atomically: true, encoding: .utf8)
    let lib = ThemeLibrary(directories: [dir])
    XCTAssertEqual(lib.problems.count, 1)
    XCTAssertTrue(lib.problems[0].contains("broken.theme:2:"), lib.problems[0])
    XCTAssertEqual(lib.themes.map(\.name), ["default", "fine"])
    let (t, err) = lib.resolve("broken")
    XCTAssertNil(t)
    XCTAssertTrue(err!.contains("broken.theme:2:") && err!.contains("using the default theme"), err!)
    let (t2, err2) = lib.resolve("nosuch")
    XCTAssertNil(t2)
    XCTAssertTrue(err2!.contains("unknown theme `nosuch`"))
    XCTAssertNotNil(lib.resolve("fine").0)
  }

  func testColourDegradation() {
    let orange = ThemeColor.rgb(255, 135, 0)
    XCTAssertEqual(orange.resolved(colors: 256), 208)
    XCTAssertTrue((0..<16).contains(orange.resolved(colors: 16)))
    XCTAssertTrue((0..<8).contains(orange.resolved(colors: 8)))
    XCTAssertEqual(ThemeColor.rgb(0, 0, 0).resolved(colors: 8), 0)
    XCTAssertEqual(ThemeColor.rgb(255, 255, 255).resolved(colors: 16), 15)
    XCTAssertEqual(ThemeColor.index(196).resolved(colors: 8), 1)  // bright red → red
    XCTAssertEqual(ThemeColor.terminalDefault.resolved(colors: 256), -1)
    XCTAssertEqual(ThemeColor.index(12).resolved(colors: 256), 12)
  }

  func testSearchDirectoriesOrder() {
    let dirs = ThemeLibrary.searchDirectories(environment: ["TPTOP_THEMES": "/a:/b"], executablePath: "/pkg/.build/debug/tptop")
    XCTAssertEqual(Array(dirs.prefix(4)), ["/a", "/b", "/pkg/themes", "/pkg/.build/share/tptop/themes"])
    XCTAssertEqual(dirs.last, FileManager.default.currentDirectoryPath + "/themes")
  }

  func testLocaleDetection() {
    XCTAssertTrue(Glyphs.localeIsUTF8(environment: ["LANG": "en_US.UTF-8"]))
    XCTAssertFalse(Glyphs.localeIsUTF8(environment: ["LC_ALL": "C", "LANG": "en_US.UTF-8"]))
    XCTAssertFalse(Glyphs.localeIsUTF8(environment: [:]))
  }
}

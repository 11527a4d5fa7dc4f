import Foundation
import TestSupport
import XCTest

/// A steady scrape allocates in proportion to the ranks, not to the job's history: the heap
/// allocations of one collection + encoding, counted by the tests' malloc preload
/// (Tests/Fixtures/alloccount.c) inside `tptop-dev bench-scrape`, for synthetic jobs of 16 and 128
/// ranks after 10 steps and after 3000 (rings of 64 slots lapped many times).
final class ScrapeAllocationTests: XCTestCase {
  static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  func buildPreload() throws -> String {
    let cc = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) }
    guard let cc else { throw MissingTool.error("a C compiler (cc, gcc or clang) to build the counting preload") }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prom-alloc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    let so = dir.appendingPathComponent("alloccount.so").path
    let src = Self.packageRoot.appendingPathComponent("Tests/Fixtures/alloccount.c").path
    let r = try run(cc, ["-shared", "-fPIC", "-O2", "-o", so, src], environment: nil)
    XCTAssertEqual(r.status, 0, r.output)
    return so
  }

  /// Runs `path args` to its exit: the status and stdout + stderr.
  func run(_ path: String, _ args: [String], environment: [String: String]?) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
  }

  /// `BENCH scrape_<n>ranks_<what> <count> allocations` lines, by n and what.
  func allocationCounts(_ output: String) -> [String: Int] {
    var out: [String: Int] = [:]
    for line in output.split(separator: "\n") where line.hasPrefix("BENCH scrape_") && line.hasSuffix(" allocations") {
      let f = line.split(separator: " ")
      guard f.count == 4, let n = Int(f[2]) else { continue }
      out[String(f[1].dropFirst("scrape_".count))] = n
    }
    return out
  }

  func testAScrapeAllocatesInProportionToTheRanksNotTheHistory() throws {
    let so = try buildPreload()
    let tptop = try BuildProducts.path("tptop-dev")
    var counts: [Int: [String: Int]] = [:]
    for history in [10, 3000] {
      let r = try run(
        tptop, ["bench-scrape", "--ranks", "16,128", "--rounds", "9", "--history", "\(history)"],
        // the same hash seed in both runs: dictionaries and sets then grow alike (with random
        // seeds, the counts of two runs differ by up to ~15 whatever the history)
        environment: ["LD_PRELOAD": so, "SWIFT_DETERMINISTIC_HASHING": "1"])
      XCTAssertEqual(r.status, 0, r.output)
      counts[history] = allocationCounts(r.output)
      XCTAssertEqual(counts[history]?.count, 4, "allocation counts of bench-scrape under the preload:\n\(r.output)")
    }
    let short = try XCTUnwrap(counts[10]), long = try XCTUnwrap(counts[3000])
    for key in ["16ranks_allocs", "16ranks_collect_allocs", "128ranks_allocs", "128ranks_collect_allocs"] {
      let a = try XCTUnwrap(short[key]), b = try XCTUnwrap(long[key])
      XCTAssertGreaterThan(a, 0, "the preload counted nothing (\(key))")
      // the same work after 10 and 3000 steps, within a few allocations per job (observed: 2 at
      // 16 ranks, 4–10 at 128), far under one per rank: rereading each rank's ring every
      // collection adds ~30 at 16 ranks, ~200 at 128
      let ranks = key.hasPrefix("128") ? 128 : 16
      XCTAssertLessThanOrEqual(abs(a - b), max(8, ranks / 8), "\(key): \(a) allocations after 10 steps, \(b) after 3000")
    }
    // at most linear in the ranks: 8 times the ranks, at most 8 × 1.25 times the allocations
    for history in [10, 3000] {
      let small = try XCTUnwrap(counts[history]?["16ranks_allocs"]), big = try XCTUnwrap(counts[history]?["128ranks_allocs"])
      XCTAssertLessThanOrEqual(Double(big), Double(small) * 8 * 1.25, "\(history) steps: 16 ranks \(small), 128 ranks \(big)")
    }
  }
}

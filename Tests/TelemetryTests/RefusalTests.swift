import Glibc
import XCTest
import TelemetryFixtures

@testable import Telemetry

/// Readers refuse bad segments with one clear line each, and never crash on garbage.
final class RefusalTests: XCTestCase {
  /// A valid segment's bytes, for mutation.
  private func validBytes(slots: Int = 16) throws -> (job: String, bytes: [UInt8]) {
    let job = uniqueJob("valid")
    defer { removeJob(job) }
    let w = try SegmentWriter.create(smallDescription(job), in: .default, slotCount: slots)
    let r0 = try w.rankWriter(worldRank: 0)
    for s in 1...40 { r0.writeStep(SyntheticJob.plausibleRecord(step: s, rank: 0, model: w.info.model)) }
    r0.writeEvent(.error, step: 40, text: "boom")
    return (job, try readRawSegment(job: job))
  }

  private func attach(_ bytes: [UInt8], tag: String) -> Result<JobReader, TelemetryError> {
    let job = uniqueJob(tag)
    defer { removeJob(job) }
    do {
      try writeRawSegment(job: job, bytes: bytes)
      return .success(try JobReader(job: job, in: .default))
    } catch let e as TelemetryError {
      return .failure(e)
    } catch {
      return .failure(.invalidArgument("\(error)"))
    }
  }

  private func expectRefusal(_ bytes: [UInt8], _ check: (TelemetryError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
    switch attach(bytes, tag: "refuse") {
    case .success: XCTFail("reader accepted a bad segment", file: file, line: line)
    case .failure(let e):
      XCTAssertTrue(check(e), "unexpected error: \(e)", file: file, line: line)
      XCTAssertFalse(e.description.contains("\n"), file: file, line: line)
      XCTAssertGreaterThan(e.description.count, 20, file: file, line: line)
    }
  }

  private func put<T>(_ bytes: inout [UInt8], _ off: Int, _ v: T) {
    bytes.withUnsafeMutableBytes { $0.storeBytes(of: v, toByteOffset: off, as: T.self) }
  }

  func testValidSegmentIsAccepted() throws {
    let (_, bytes) = try validBytes()
    guard case .success(let r) = attach(bytes, tag: "ok") else { return XCTFail("valid segment refused") }
    let p = r.poll(rank: 0)
    XCTAssertEqual(p.steps.count, 15)
    XCTAssertEqual(p.events.first?.text, "boom")
    XCTAssertEqual(p.lost, 25)
  }

  func testWrongMagic() throws {
    var (_, bytes) = try validBytes()
    put(&bytes, SegmentLayout.Header.magic, UInt64(0x1234_5678))
    expectRefusal(bytes) { if case .wrongMagic = $0 { return true } else { return false } }
    expectRefusal(Array("hello, this is not a segment at all".utf8)) { if case .wrongMagic = $0 { return true } else { return false } }
  }

  func testOtherMajorVersion() throws {
    var (_, bytes) = try validBytes()
    put(&bytes, SegmentLayout.Header.versionMajor, UInt32(2))
    expectRefusal(bytes) { if case .versionMismatch(_, 2, 1) = $0 { return true } else { return false } }
  }

  func testTruncated() throws {
    let (_, bytes) = try validBytes()
    expectRefusal(Array(bytes.prefix(bytes.count - 4096))) { if case .truncated = $0 { return true } else { return false } }
    expectRefusal(Array(bytes.prefix(100))) { if case .truncated = $0 { return true } else { return false } }
    expectRefusal(Array(bytes.prefix(5))) { if case .truncated = $0 { return true } else { return false } }
  }

  func testNotReady() throws {
    var (_, bytes) = try validBytes()
    put(&bytes, SegmentLayout.Header.ready, UInt64(0))
    expectRefusal(bytes) { if case .notReady = $0 { return true } else { return false } }
    // Freshly truncated, nothing written yet.
    expectRefusal([UInt8](repeating: 0, count: 8192)) { if case .notReady = $0 { return true } else { return false } }
    expectRefusal([]) { if case .notReady = $0 { return true } else { return false } }
  }

  func testOwnerIsTheFilesNotTheField() throws {
    // the owner field is written by whoever can write the file: the file's owner decides (a
    // segment of another user is refused in UntrustedSegmentTests, made as uid 65534)
    var (_, bytes) = try validBytes()
    put(&bytes, SegmentLayout.Header.ownerUID, geteuid() &+ 1)
    guard case .success(let r) = attach(bytes, tag: "owner") else { return XCTFail("our own file refused") }
    XCTAssertEqual(r.info.ownerUID, geteuid())
  }

  func testCorruptFields() throws {
    let (_, good) = try validBytes()
    typealias H = SegmentLayout.Header
    let mutations: [(Int, UInt64)] = [
      (H.controlOffset, 1), (H.ringsOffset, 0), (H.slotCount, 3), (H.slotCount, 1 << 40), (H.slotSize, 128),
      (H.rankHeaderStride, 64), (H.jobDescriptionSize, 0),
    ]
    for (off, v) in mutations {
      var b = good
      put(&b, off, v)
      expectRefusal(b) { if case .corrupt = $0 { return true } else { return false } }
    }
    var b = good
    put(&b, H.worldSize, UInt32(100_000))
    expectRefusal(b) { if case .corrupt = $0 { return true } else { return false } }
    b = good
    put(&b, H.tp, UInt32(0))
    expectRefusal(b) { if case .corrupt = $0 { return true } else { return false } }
    b = good
    put(&b, SegmentLayout.pageSize + SegmentLayout.Shard.dimensionCount, UInt32(9))
    expectRefusal(b) { if case .corrupt = $0 { return true } else { return false } }
  }

  func testNoSuchJobAndBadNames() {
    XCTAssertThrowsError(try JobReader(job: "no-such-job-\(getpid())", in: .default)) { e in
      XCTAssertEqual(e as? TelemetryError, .noSuchJob("no-such-job-\(getpid())"))
    }
    for bad in ["", "a/b", "..", String(repeating: "x", count: 64), "sp ace", "é"] {
      XCTAssertThrowsError(try JobReader(job: bad, in: .default)) { e in
        XCTAssertEqual(e as? TelemetryError, .invalidJobName(bad))
      }
    }
  }

  /// Random bytes, random mutations of a valid segment, and truncations: never a crash, and any
  /// attached reader's every call stays within its mapping.
  func testFuzzNeverCrashes() throws {
    let (_, good) = try validBytes()
    var rng = SystemRandomNumberGenerator()
    let job = uniqueJob("fuzz")
    defer { removeJob(job) }
    var accepted = 0
    var cases = 0
    func exercise(_ bytes: [UInt8]) throws {
      cases += 1
      try writeRawSegment(job: job, bytes: bytes)
      guard let r = try? JobReader(job: job, in: .default) else { return }
      accepted += 1
      _ = r.poll()
      _ = r.ranks()
      _ = r.phase()
      _ = r.control()
      _ = r.summary()
      _ = r.latestStep(rank: 0)
      r.seekToStart()
      _ = r.poll()
    }
    // Pure random garbage of random sizes.
    for _ in 0..<500 {
      let n = Int.random(in: 0...20_000, using: &rng)
      try exercise(randomBytes(n, &rng))
    }
    // Valid header, random bytes everywhere else (rank headers, rings, shards).
    for _ in 0..<500 {
      var b = good
      let noise = randomBytes(b.count, &rng)
      let keep = randomBytes(b.count, &rng)
      for k in SegmentLayout.pageSize..<b.count where keep[k] & 1 == 0 { b[k] = noise[k] }
      try exercise(b)
    }
    // A few random byte flips anywhere.
    for _ in 0..<2000 {
      var b = good
      for _ in 0..<Int.random(in: 1...8, using: &rng) {
        let k = Int.random(in: 0..<b.count, using: &rng)
        b[k] = UInt8.random(in: 0...255, using: &rng)
      }
      try exercise(b)
    }
    // Every truncation length on a page grid plus random ones.
    for n in stride(from: 0, through: good.count, by: 512) { try exercise(Array(good.prefix(n))) }
    for _ in 0..<300 { try exercise(Array(good.prefix(Int.random(in: 0...good.count, using: &rng)))) }
    XCTAssertGreaterThan(cases, 3000)
    XCTAssertGreaterThan(accepted, 100)
  }

  private func randomBytes(_ n: Int, _ rng: inout SystemRandomNumberGenerator) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: n)
    b.withUnsafeMutableBytes { raw in
      var k = 0
      while k + 8 <= n { raw.storeBytes(of: rng.next() as UInt64, toByteOffset: k, as: UInt64.self); k += 8 }
      while k < n { raw[k] = UInt8(truncatingIfNeeded: rng.next() as UInt64); k += 1 }
    }
    return b
  }

  func testCorruptRecordsAreCountedNotReturned() throws {
    let job = uniqueJob("corrupt")
    defer { removeJob(job) }
    let w = try SegmentWriter.create(smallDescription(job, worldSize: 1, tp: 1), in: .default, slotCount: 16)
    let r0 = try w.rankWriter(worldRank: 0)
    for s in 1...4 { var r = StepRecord(); r.step = s; r0.writeStep(r) }
    // Damage one payload byte of record 2 behind the writer's back.
    let g = w.geometry
    (w.mapping.base + g.ringOffset(0) + 2 * 256 + SegmentLayout.Slot.loss).storeBytes(of: UInt8(0x55), as: UInt8.self)
    let p = try JobReader(job: job, in: .default).poll(rank: 0)
    XCTAssertEqual(p.steps.map(\.step), [1, 2, 4])
    XCTAssertEqual(p.corrupt, 1)
    XCTAssertEqual(p.lost, 0)
  }
}

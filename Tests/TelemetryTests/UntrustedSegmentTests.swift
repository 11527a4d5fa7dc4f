import Foundation
import Glibc
import JobSchema
import TestSupport
import XCTest
import TelemetryFixtures

@testable import Telemetry

/// What another local user can put in /dev/shm or /tmp must not be trusted: ownership comes
/// from the file, text from a segment cannot drive a terminal, a crafted sparse segment cannot
/// make a reader allocate, and another user's symbolic link is not followed.
final class UntrustedSegmentTests: XCTestCase {
  /// A valid segment's bytes with one event of text `eventText` in rank 0's ring.
  private func validBytes(eventText: String = "boom", slots: Int = 16) throws -> [UInt8] {
    let job = uniqueJob("src")
    defer { removeJob(job) }
    let w = try SegmentWriter.create(smallDescription(job), in: .default, slotCount: slots)
    let r0 = try w.rankWriter(worldRank: 0)
    for s in 1...3 { r0.writeStep(SyntheticJob.plausibleRecord(step: s, rank: 0, model: w.info.model)) }
    r0.writeEvent(.error, step: 3, text: eventText)
    return try readRawSegment(job: job)
  }

  private func put<T>(_ bytes: inout [UInt8], _ off: Int, _ v: T) {
    bytes.withUnsafeMutableBytes { $0.storeBytes(of: v, toByteOffset: off, as: T.self) }
  }

  /// Issue 25, item 7: a segment made by uid 65534 whose owner field says root, mode 666.
  func testAForgedOwnerFieldDoesNotMakeAnotherUsersSegmentOurs() throws {
    var bytes = try validBytes()
    put(&bytes, SegmentLayout.Header.ownerUID, geteuid())
    let job = uniqueJob("forged")
    defer { removeJob(job) }
    let path = "/dev/shm/tptop." + job
    let made = try SecondUser.run("cat > \(path) && chmod 666 \(path)", input: Data(bytes))
    XCTAssertEqual(made.status, 0, made.output)
    XCTAssertThrowsError(try JobReader(job: job, in: .default)) { e in
      guard case .foreignOwner(_, let owner, let me)? = e as? TelemetryError else { return XCTFail("accepted: \(e)") }
      XCTAssertEqual(owner, SecondUser.uid, "judged by the file's owner, not by the field")
      XCTAssertEqual(me, geteuid())
    }
    XCTAssertThrowsError(try JobReader(job: job, in: .default, requireDescription: false), "control refused too")
    let summary = JobDirectory.summary(job: job, in: .default)
    XCTAssertTrue(summary.foreign, "listed as foreign")
    XCTAssertNil(summary.phase)
    // our own file whose field names someone else is ours: the file decides both ways
    var other = try validBytes()
    put(&other, SegmentLayout.Header.ownerUID, geteuid() &+ 1)
    let mine = uniqueJob("mine")
    defer { removeJob(mine) }
    try writeRawSegment(job: mine, bytes: other)
    XCTAssertEqual(try JobReader(job: mine, in: .default).info.ownerUID, geteuid())
  }

  /// Issue 25, item 7: a control window onto a name that another user's file took since the
  /// reader attached is refused.
  func testControlRefusesAFileSwappedUnderTheName() throws {
    let bytes = try validBytes()
    let job = uniqueJob("swap")
    defer { removeJob(job) }
    try writeRawSegment(job: job, bytes: bytes)
    let reader = try JobReader(job: job, in: .default)
    removeJob(job)
    let path = "/dev/shm/tptop." + job
    let made = try SecondUser.run("cat > \(path) && chmod 666 \(path)", input: Data(bytes))
    XCTAssertEqual(made.status, 0, made.output)
    XCTAssertThrowsError(try reader.request(.pause)) { e in
      guard case .foreignOwner? = e as? TelemetryError else { return XCTFail("unexpected: \(e)") }
    }
  }

  /// Issue 25, item 8: escape sequences in event text reach no terminal or file.
  func testControlCharactersInSegmentTextAreReplaced() throws {
    let hostile = "\u{1B}]0;owned\u{07}\u{1B}[2J\u{9B}31mred\u{7F}\nnext"
    let bytes = try validBytes(eventText: hostile)
    let job = uniqueJob("esc")
    defer { removeJob(job) }
    try writeRawSegment(job: job, bytes: bytes)
    let text = try XCTUnwrap(JobReader(job: job, in: .default).poll(rank: 0).events.first?.text)
    XCTAssertFalse(text.unicodeScalars.contains { $0.value < 0x20 || ($0.value >= 0x7F && $0.value < 0xA0) }, text.debugDescription)
    XCTAssertEqual(text, "\u{FFFD}]0;owned\u{FFFD}\u{FFFD}[2J\u{FFFD}31mred\u{FFFD}\u{FFFD}next")
    XCTAssertEqual(FixedText.printable("plain text, ünïcode"), "plain text, ünïcode")
  }

  /// Issue 25, item 9: a ready header over a sparse file (pages never allocated) is refused
  /// before any ring is read.
  func testASparseSegmentIsRefused() throws {
    let bytes = try validBytes(slots: 64)
    let job = uniqueJob("sparse")
    defer { removeJob(job) }
    // everything up to the rings as written (header, description, control page, rank headers),
    // then a hole where the rings are: valid in every field, but its pages were never allocated
    try writeRawSegment(job: job, bytes: bytes)
    let rings = try JobReader(job: job, in: .default).geometry.ringOffset(0)
    removeJob(job)
    let fd = shm_open("/tptop." + job, O_RDWR | O_CREAT | O_EXCL, 0o600)
    XCTAssertGreaterThanOrEqual(fd, 0)
    XCTAssertEqual(ftruncate(fd, off_t(bytes.count)), 0)
    XCTAssertEqual(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, rings, 0) }, rings)
    close(fd)
    XCTAssertGreaterThan(bytes.count, rings + 4 * SegmentLayout.pageSize, "the hole is larger than the slack")
    XCTAssertThrowsError(try JobReader(job: job, in: .default)) { e in
      guard case .corrupt(_, let detail)? = e as? TelemetryError else { return XCTFail("accepted: \(e)") }
      XCTAssertTrue(detail.hasPrefix("a sparse file"), detail)
      XCTAssertFalse("\(e)".contains("\n"))
    }
    // the same bytes written out in full are accepted
    try writeRawSegment(job: job, bytes: bytes)
    XCTAssertNoThrow(try JobReader(job: job, in: .default))
  }

  /// Issue 25, item 9: the crafted case itself, 4096 ranks × 2²⁰ slots (1 TiB of rings) claimed
  /// by a sparse file whose header is valid in every geometry word, is refused by the readers'
  /// memory cap before any ring is read, in one line; a real segment passes the same cap.
  func testRingsLargerThanThisMachinesMemoryAreRefused() throws {
    typealias H = SegmentLayout.Header
    var bytes = Array(try validBytes().prefix(H.size))
    let shards = bytes.withUnsafeBytes { Int($0.load(fromByteOffset: H.shardCount, as: UInt32.self)) }
    let g = SegmentGeometry(worldSize: 4096, tp: 1, shardCount: shards, slotCount: 1 << 20)
    put(&bytes, H.worldSize, UInt32(4096))
    put(&bytes, H.tp, UInt32(1))
    put(&bytes, H.dp, UInt32(4096))
    put(&bytes, H.slotCount, UInt64(1 << 20))
    for (off, want, _) in g.headerWords { put(&bytes, off, UInt64(want)) }
    XCTAssertEqual(g.totalSize >> 40, 1, "a 1 TiB segment")
    let job = uniqueJob("huge")
    defer { removeJob(job) }
    let fd = shm_open("/tptop." + job, O_RDWR | O_CREAT | O_EXCL, 0o600)
    XCTAssertGreaterThanOrEqual(fd, 0)
    XCTAssertEqual(ftruncate(fd, off_t(g.totalSize)), 0)
    XCTAssertEqual(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, 0) }, bytes.count)
    close(fd)
    XCTAssertThrowsError(try JobReader(job: job, in: .default)) { e in
      guard case .corrupt(_, let detail)? = e as? TelemetryError else { return XCTFail("accepted: \(e)") }
      XCTAssertTrue(detail.hasPrefix("its header claims 4096 rings of 1048576 slots, 1024 GiB, more than this machine's "), detail)
      XCTAssertFalse("\(e)".contains("\n"))
    }
    // the cap is the machine's memory: a real segment is far below it, and refused only under a
    // cap below its own rings
    let real = try validBytes(slots: 64)
    try real.withUnsafeBytes { b in
      let base = UnsafeMutableRawPointer(mutating: b.baseAddress!)
      XCTAssertNoThrow(try ValidatedHeader.validate(base: base, size: real.count, job: "real", checkOwner: false))
      XCTAssertThrowsError(try ValidatedHeader.validate(base: base, size: real.count, job: "real", checkOwner: false, ringCap: 4096))
    }
    XCTAssertGreaterThan(SegmentGeometry.readerRingCap, 1 << 28)
  }

  /// Issue 25, item 13: a record whose rank field differs from its ring's rank is not accepted.
  func testARecordNamingAnotherRankIsNotAccepted() throws {
    let job = uniqueJob("rank77")
    defer { removeJob(job) }
    let w = try SegmentWriter.create(smallDescription(job), in: .default, slotCount: 16)
    let r0 = try w.rankWriter(worldRank: 0)
    r0.writeStep(SyntheticJob.plausibleRecord(step: 1, rank: 0, model: w.info.model))
    // a writer that claims ring 0 but stamps rank 77 (the Python writer can be told any rank)
    let forged = SyntheticJob.plausibleRecord(step: 2, rank: 77, model: w.info.model)
    withUnsafeTemporaryAllocation(byteCount: SegmentLayout.Slot.payloadSize, alignment: 8) { buf in
      RecordCodec.encode(forged.metrics, timestampNs: 1, rank: 77, into: buf.baseAddress!)
      r0.publish(UnsafeRawPointer(buf.baseAddress!))
    }
    let p = try JobReader(job: job, in: .default).poll(rank: 0)
    XCTAssertEqual(p.steps.map(\.step), [1])
    XCTAssertEqual(p.corrupt, 1)
  }

  /// Issue 25, item 11: `export --output` does not follow another user's symbolic link in a
  /// sticky world-writable directory; its own links there, and links elsewhere, still work.
  func testAnotherUsersLinkInAStickyDirectoryIsNotFollowed() throws {
    let sticky = "/tmp/tptop-sticky-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    XCTAssertEqual(mkdir(sticky, 0o777), 0)
    chmod(sticky, 0o1777)
    defer { try? FileManager.default.removeItem(atPath: sticky) }
    let victim = sticky + "/secret"
    try Data("root's data\n".utf8).write(to: URL(fileURLWithPath: victim))
    chmod(victim, 0o600)
    let trap = sticky + "/export.csv"
    let made = try SecondUser.run("ln -s \(victim) \(trap)")
    XCTAssertEqual(made.status, 0, made.output)
    XCTAssertThrowsError(try OutputFile.write(Array("x\n".utf8), to: trap)) { e in
      let line = "\(e)"
      XCTAssertTrue(line.contains("symbolic link of uid \(SecondUser.uid)"), line)
      XCTAssertTrue(line.contains("choose another --output"), line)
    }
    XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "root's data\n", "the link's target is untouched")
    // this user's own link in the same directory is written through
    let own = sticky + "/own"
    XCTAssertEqual(symlink(victim, own), 0)
    try OutputFile.write(Array("new\n".utf8), to: own)
    XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "new\n")
  }
}

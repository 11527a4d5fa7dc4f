import Foundation
import XCTest
import TelemetryFixtures

@testable import Telemetry

/// The rank header's device words (written by the Python writer from torch.cuda) reach
/// `JobReader`; all zero reads as no device.
final class DeviceWordsTests: XCTestCase {
  func testDeviceWordsAreRead() throws {
    let name = "ux-device-\(getpid())"
    let job = try SyntheticJob(job: name, worldSize: 2, tp: 2, totalSteps: 10)
    defer { try? job.remove() }
    job.advance(steps: 1)
    let reader = try JobReader(job: name, in: .default)
    XCTAssertNil(reader.ranks()[1].device, "nothing written: no device")
    let R = SegmentLayout.RankHeader.self
    let h = reader.geometry.rankHeaderOffset(1)
    let f = try XCTUnwrap(FileHandle(forUpdatingAtPath: "/dev/shm/\(SegmentSpace.default.prefix)\(name)"))
    func put<T: FixedWidthInteger>(_ v: T, _ off: Int) throws {
      try f.seek(toOffset: UInt64(h + off))
      try f.write(contentsOf: withUnsafeBytes(of: v.littleEndian) { Data($0) })
    }
    try put(UInt64(3 << 30), R.deviceMemoryAllocated)
    try put(UInt64(4 << 30), R.deviceMemoryReserved)
    try put(UInt64(5 << 30), R.deviceMemoryPeak)
    try put(UInt32(42), R.deviceUtilization)
    try f.close()
    let d = try XCTUnwrap(reader.ranks()[1].device)
    XCTAssertEqual(d, DeviceUsage(allocatedBytes: 3 << 30, reservedBytes: 4 << 30, peakBytes: 5 << 30, utilization: 0.41))
    XCTAssertNil(reader.ranks()[0].device)
  }
}

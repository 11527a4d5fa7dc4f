import Glibc
import JobSchema
import XCTest

@testable import Telemetry

/// A job name unique to this test process.
func uniqueJob(_ tag: String) -> String { "test-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

/// Writes `bytes` into /dev/shm/tptop.<job> (mode 0600), replacing any existing object.
func writeRawSegment(job: String, bytes: [UInt8]) throws {
  let name = "/tptop." + job
  shm_unlink(name)
  let fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0o600)
  guard fd >= 0 else { throw TelemetryError.system(call: "shm_open", job: job, errno: errno) }
  defer { close(fd) }
  var off = 0
  while off < bytes.count {
    let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { throw TelemetryError.system(call: "write", job: job, errno: errno) }
    off += n
  }
}

/// Reads the whole object /dev/shm/tptop.<job>.
func readRawSegment(job: String) throws -> [UInt8] {
  let fd = open("/dev/shm/tptop." + job, O_RDONLY)
  guard fd >= 0 else { throw TelemetryError.system(call: "open", job: job, errno: errno) }
  defer { close(fd) }
  var st = stat()
  fstat(fd, &st)
  var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
  var off = 0
  while off < bytes.count {
    let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, $0.count - off) }
    guard n > 0 else { break }
    off += n
  }
  return bytes
}

func removeJob(_ job: String) { shm_unlink("/tptop." + job) }

func smallDescription(_ job: String, worldSize: Int = 2, tp: Int = 2) -> JobDescription {
  let model = ModelShape(
    layers: 2, heads: 4, channels: 64, vocab: 100, paddedVocab: 128, maxSeq: 32, batch: 2, seq: 16)
  return JobDescription(
    name: job, model: model, preset: "tiny", worldSize: worldSize, tp: tp, dp: worldSize / tp, totalSteps: 10,
    shards: ShardedTensor.gpt2Layout(model, tp: tp))
}

import Foundation
import Glibc
import JobSchema
import TestSupport
import XCTest

@testable import RunStore
@testable import Telemetry
@testable import TensorBoard

/// TensorBoard both ways, against the real thing: PyPI's `tensorboard` (in `.venv-test`, made by
/// `make test-deps`) reads what tptop writes, exactly; tptop reads what torch's `SummaryWriter`
/// writes, exactly as tensorboard reads it; damaged files cost one line and nothing before the
/// damage.
final class TensorBoardTests: XCTestCase {
  var scratch: String!

  override func setUp() {
    scratch = FileManager.default.temporaryDirectory.appendingPathComponent("st-tb-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
  }

  override func tearDown() { try? FileManager.default.removeItem(atPath: scratch) }

  static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

  /// The test venv's python, with tensorboard importable (and torch, through Debian's site packages).
  func venvPython(needs modules: [String]) throws -> String {
    let py = Self.repo + "/.venv-test/bin/python"
    guard FileManager.default.isExecutableFile(atPath: py) else { throw MissingTool.error(".venv-test with tensorboard (make test-deps)") }
    let r = try run(py, ["-c", modules.map { "import \($0)" }.joined(separator: "; ")])
    try MissingTool.require(r.status == 0, "python modules \(modules) in .venv-test (make test-deps): \(r.err)")
    return py
  }

  func run(_ tool: String, _ args: [String], env: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: tool)
    p.arguments = args
    p.standardInput = FileHandle.nullDevice
    p.environment = ProcessInfo.processInfo.environment.merging(env) { _, b in b }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let errData = Locked(Data())
    let h = err.fileHandleForReading
    let t = Thread { let d = h.readDataToEndOfFile(); errData.set(d) }
    t.start()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while !errData.done { usleep(1000) }
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errData.value, as: UTF8.self))
  }

  /// Python that prints every scalar tensorboard's EventAccumulator reads under a directory, as
  /// JSON lines {run, tag, step, wall_time, value} (sorted).
  static let accumulatorScript = """
    import json, os, sys
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    root = sys.argv[1]
    out = []
    for d, _, files in sorted(os.walk(root)):
        if not any('tfevents' in f for f in files):
            continue
        acc = EventAccumulator(d, size_guidance={'scalars': 0, 'tensors': 0})
        acc.Reload()
        run = os.path.relpath(d, root) if d != root else os.path.basename(root)
        for tag in acc.Tags()['scalars']:
            for e in acc.Scalars(tag):
                out.append(dict(run=run, tag=tag, step=e.step, wall_time=e.wall_time, value=e.value))
        for tag in acc.Tags().get('tensors', []):
            for e in acc.Tensors(tag):
                import tensorboard.util.tensor_util as tu
                out.append(dict(run=run, tag=tag, step=e.step, wall_time=e.wall_time, value=float(tu.make_ndarray(e.tensor_proto).item())))
    for o in sorted(out, key=lambda o: (o['run'], o['tag'], o['step'])):
        print(json.dumps(o))
    """

  struct Scalar: Decodable, Equatable {
    var run: String
    var tag: String
    var step: Int64
    var wall_time: Double
    var value: Double?
  }

  func decode(_ lines: String) throws -> [Scalar] {
    try lines.split(separator: "\n").map { try JSONDecoder().decode(Scalar.self, from: Data($0.utf8)) }
      .sorted { ($0.run, $0.tag, $0.step) < ($1.run, $1.tag, $1.step) }
  }

  func testCRC32CMatchesTheStandardCheckValue() {
    XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
    XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
  }

  /// A stored run written through RunFile, exported with `tptop export --format tfevents`, read
  /// by tensorboard's EventAccumulator: every job-level and per-rank scalar, exactly (as f32).
  func testTensorBoardReadsWhatTptopWritesExactly() throws {
    let py = try venvPython(needs: ["tensorboard"])
    let tptop = try BuildProducts.path("tptop")
    let store = StoreLocation(directory: scratch + "/runs")
    var h = RunHeader(name: "tb1", job: "tb1", writer: "tptrain", state: "finished", started: 1_700_000_000, world: 2, tp: 2,
                      dp: 1, totalSteps: 30, preset: "tiny", budgetBytes: 1 << 20)
    h.bucketSteps = 1
    let file = try RunFile(location: store, header: h, reopen: false)
    let acc = RunAccumulator(world: 2, dp: 1, bucketSteps: 1, wallOffset: 1_700_000_000)
    for step in 1...30 {
      for rank in 0..<2 {
        var r = StepRecord()
        r.rank = rank
        r.step = step
        r.timestampNs = UInt64(step) * 123_456_789
        r.loss = 4 + 1 / Float(step)
        r.lr = 1e-3 * Float(step)
        r.gradNorm = 0.3
        r.tokens = 64
        r.stepNs = UInt64(9_876_543 + step * 1111 + rank * 77)
        r.commNs = UInt64(1_234_567 + rank)
        r.rssBytes = UInt64(123_456_789 + rank)
        acc.add(r, nowNs: 0)
      }
    }
    try file.write(acc.takeBatch(nowNs: 0, final: true), state: "finished", lastStep: 30, finalLoss: nil, bestLoss: nil)
    let out = scratch + "/tb"
    let r = try run(tptop, ["export", "tb1", "--format", "tfevents", "--output", out], env: ["TPTOP_RUNS": store.directory])
    XCTAssertEqual(r.status, 0, r.err)
    let read = try run(py, ["-c", Self.accumulatorScript, out])
    XCTAssertEqual(read.status, 0, read.err)
    let got = try decode(read.out)

    var expected: [Scalar] = []
    let run = try StoredRun(location: store, name: "tb1")
    try run.series { row in
      for t in TensorBoardTags.series {
        let v = row.values[StoreSchema.seriesColumns.firstIndex(of: t.column)!] * t.scale
        expected.append(Scalar(run: "job", tag: t.tag, step: Int64(row.step), wall_time: row.wallTime, value: Double(Float(v))))
      }
    }
    try run.rankSteps { s, _, wall in
      for t in StepFields.tensorBoardRank {
        let v = t.field.value(s.metrics) * t.scale
        expected.append(Scalar(run: "rank\(s.rank)", tag: t.tag, step: Int64(s.step), wall_time: wall, value: Double(Float(v))))
      }
    }
    expected.sort { ($0.run, $0.tag, $0.step) < ($1.run, $1.tag, $1.step) }
    let perStep = TensorBoardTags.series.count + 2 * StepFields.tensorBoardRank.count
    XCTAssertEqual(got.count, 30 * perStep)
    XCTAssertEqual(got, expected)
    XCTAssertTrue(got.contains { $0.tag == "train/loss" && $0.step == 3 && $0.value == Double(Float(4 + 1 / Float(3))) })

    // tptop's compare reads an export back as one run named by its directory (not as job,
    // rank0 and rank1), and a folder of exports as one run each
    func table(_ dir: String) throws -> [[Substring]] {
      let c = try self.run(tptop, ["compare", dir, "--plain"], env: ["TPTOP_RUNS": store.directory])
      XCTAssertEqual(c.status, 0, c.err)
      return c.out.split(separator: "\n").map { $0.split(separator: " ") }
    }
    let final = String(format: "%.4f", Double(Float(4 + 1 / Float(30))))
    var rows = try table(out)
    XCTAssertEqual(rows.first, ["run", "tb"])
    XCTAssertEqual(rows.dropFirst().first, ["final", "loss", Substring(final)])
    for name in ["a", "b"] {
      let e = try self.run(tptop, ["export", "tb1", "--format", "tfevents", "--output", scratch + "/exports/" + name], env: ["TPTOP_RUNS": store.directory])
      XCTAssertEqual(e.status, 0, e.err)
    }
    rows = try table(scratch + "/exports")
    XCTAssertEqual(rows.first, ["run", "exports/a", "exports/b"])
    // a second export into a directory that holds event files would add the run to them (every
    // file a directory holds is one run to TensorBoard): refused in one line, nothing written
    let before = try FileManager.default.subpathsOfDirectory(atPath: out).sorted()
    let again = try self.run(tptop, ["export", "tb1", "--format", "tfevents", "--output", out], env: ["TPTOP_RUNS": store.directory])
    XCTAssertNotEqual(again.status, 0)
    XCTAssertEqual(again.err.split(separator: "\n").count, 1, again.err)
    XCTAssertTrue(again.err.contains("already holds TensorBoard event files"), again.err)
    XCTAssertEqual(try FileManager.default.subpathsOfDirectory(atPath: out).sorted(), before)
    // `tptop open` on the export: an ended run (its files unwritten for a while), its job rate
    // as recorded (it showed the rate divided by the step time again: ×100 here)
    let old = Date(timeIntervalSinceNow: -600)
    for f in try FileManager.default.subpathsOfDirectory(atPath: out) where f.contains("tfevents") {
      try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: out + "/" + f)
    }
    var lastRate = 0.0
    try run.series { lastRate = $0.values[StoreSchema.seriesColumns.firstIndex(of: "tokens_per_s")!] }
    let opened = try self.run(tptop, ["open", out], env: ["TPTOP_RUNS": store.directory, "TERM": "dumb", "COLUMNS": "120", "LINES": "30"])
    XCTAssertEqual(opened.status, 0, opened.err)
    let header = String(opened.out.split(separator: "\n").first ?? "")
    XCTAssertTrue(header.contains("finished"), header)
    let shown = try XCTUnwrap(header.range(of: #"[0-9.]+k tok/s"#, options: .regularExpression).map { Double(header[$0].prefix { $0 != "k" })! * 1000 }, header)
    XCTAssertEqual(shown, lastRate, accuracy: lastRate * 0.05, header)
    // jsonl is export's default format
    let plain = try self.run(tptop, ["export", "tb1"], env: ["TPTOP_RUNS": store.directory])
    XCTAssertEqual(plain.status, 0, plain.err)
    XCTAssertTrue(plain.out.hasPrefix("{"), String(plain.out.prefix(200)))
    XCTAssertEqual(rows.dropFirst().first, ["final", "loss", Substring(final), Substring(final)])
  }

  /// torch.utils.tensorboard.SummaryWriter writes two runs (old-style simple values and
  /// new-style scalar tensors); `tptop export LOGDIR --format jsonl` reads exactly what
  /// tensorboard's EventAccumulator reads.
  func testTptopReadsSummaryWriterFilesExactly() throws {
    let py = try venvPython(needs: ["tensorboard", "torch"])
    let tptop = try BuildProducts.path("tptop")
    let logdir = scratch + "/logs"
    let w = try run(py, ["-c", """
      import math, sys
      from torch.utils.tensorboard import SummaryWriter
      for name, new_style in (('run_a', False), ('run_b', True)):
          w = SummaryWriter(log_dir=sys.argv[1] + '/' + name)
          for step in range(0, 200, 3):
              w.add_scalar('train/loss', 5 * math.exp(-step / 50) + 0.1 * math.sin(step), step, new_style=new_style)
              w.add_scalar('train/lr', 3e-4 * (step + 1) / 200, step, new_style=new_style)
          w.close()
      """, logdir])
    XCTAssertEqual(w.status, 0, w.err)
    let expected = try decode(try run(py, ["-c", Self.accumulatorScript, logdir]).out)
    XCTAssertEqual(expected.count, 2 * 2 * 67)
    let r = try run(tptop, ["export", logdir, "--format", "jsonl"])
    XCTAssertEqual(r.status, 0, r.err)
    XCTAssertEqual(r.err, "")
    XCTAssertEqual(try decode(r.out), expected)
  }

  /// A bad CRC in the middle, an absurd length, a torn last record: one line each, and every
  /// record before the damage still read; a file that grows is read on from where it stopped.
  func testDamagedAndGrowingEventFiles() throws {
    let dir = scratch + "/dmg"
    let writer = try EventFileWriter(directory: dir, wallTime: 1)
    for s in 0..<10 { try writer.write(step: Int64(s), wallTime: 1 + Double(s), scalars: [("x", Double(s))]) }
    try writer.close()
    let path = writer.path
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    let whole = bytes
    // torn tail: the last record cut in half is not read, and no problem is reported
    try Data(whole.prefix(whole.count - 10)).write(to: URL(fileURLWithPath: path))
    let reader = try EventFileReader(path: path)
    var got: [Double] = []
    try reader.readScalars { got.append($0.value) }
    XCTAssertEqual(got, (0..<9).map(Double.init))
    XCTAssertNil(reader.problem)
    // the file grows: the rest is read on
    try Data(whole).write(to: URL(fileURLWithPath: path))
    try reader.readScalars { got.append($0.value) }
    XCTAssertEqual(got, (0..<10).map(Double.init))
    // one flipped byte in the data of the 6th record (the file-version record is first)
    var offsets: [Int] = []
    var o = 0
    while o < bytes.count {
      offsets.append(o)
      let n = bytes[o..<o + 8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
      o += 12 + n + 4
    }
    bytes[offsets[6] + 14] ^= 0xFF
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    let bad = try EventFileReader(path: path)
    got = []
    try bad.readScalars { got.append($0.value) }
    XCTAssertEqual(got, (0..<5).map(Double.init))
    XCTAssertEqual(bad.problem, "\(path): bad data checksum of the record at byte \(offsets[6]); the rest of the file is skipped")
    // an absurd length with a valid length checksum
    var huge = whole
    let len = withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Array($0) }
    huge.replaceSubrange(offsets[2]..<offsets[2] + 8, with: len)
    huge.replaceSubrange(offsets[2] + 8..<offsets[2] + 12, with: withUnsafeBytes(of: CRC32C.maskedChecksum(len).littleEndian) { Array($0) })
    try Data(huge).write(to: URL(fileURLWithPath: path))
    let absurd = try EventFileReader(path: path)
    got = []
    try absurd.readScalars { got.append($0.value) }
    XCTAssertEqual(got, [0])
    XCTAssertEqual(absurd.problem, "\(path): record of \(1 << 40) bytes at byte \(offsets[2]) is too long; the rest of the file is skipped")
    // through tptop: one line on stderr, the records before the damage on stdout
    let tptop = try BuildProducts.path("tptop")
    let r = try run(tptop, ["export", dir, "--format", "jsonl"])
    XCTAssertEqual(r.status, 0)
    XCTAssertEqual(r.out.split(separator: "\n").count, 1)
    XCTAssertEqual(r.err, "tptop: \(absurd.problem!)\n")
  }
}

/// A value set once from another thread.
final class Locked: @unchecked Sendable {
  private let lock = NSLock()
  private var data = Data()
  private var finished = false
  init(_ d: Data) { data = d }
  func set(_ d: Data) { lock.lock(); data = d; finished = true; lock.unlock() }
  var done: Bool { lock.lock(); defer { lock.unlock() }; return finished }
  var value: Data { lock.lock(); defer { lock.unlock() }; return data }
}

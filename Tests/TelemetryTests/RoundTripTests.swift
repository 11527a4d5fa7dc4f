import Glibc
import JobSchema
import XCTest
import TelemetryFixtures

@testable import Telemetry

final class RoundTripTests: XCTestCase {
  func testLayoutOffsetsAreDisjointAndAligned() {
    typealias H = SegmentLayout.Header
    let fields: [(Int, Int)] = [
      (H.magic, 8), (H.versionMajor, 4), (H.versionMinor, 4), (H.totalSize, 8), (H.headerSize, 8),
      (H.jobDescriptionOffset, 8), (H.jobDescriptionSize, 8), (H.controlOffset, 8), (H.controlSize, 8),
      (H.rankHeadersOffset, 8), (H.rankHeaderStride, 8), (H.ringsOffset, 8), (H.ringStride, 8),
      (H.slotCount, 8), (H.slotSize, 8), (H.creationTimeNs, 8), (H.incarnation, 8), (H.ownerUID, 4),
      (H.worldSize, 4), (H.tp, 4), (H.dp, 4), (H.totalSteps, 8), (H.modelLayers, 4), (H.modelHeads, 4),
      (H.modelChannels, 4), (H.modelVocab, 4), (H.modelPaddedVocab, 4), (H.modelMaxSeq, 4),
      (H.modelBatch, 4), (H.modelSeq, 4), (H.shardCount, 4), (H.shardEntrySize, 4), (H.creatorPid, 4),
      (H.jobName, H.jobNameCapacity), (H.presetName, H.presetNameCapacity), (H.features, 8), (H.ready, 8),
    ]
    assertDisjoint(fields, within: H.size)
    typealias S = SegmentLayout.Slot
    let step: [(Int, Int)] = [
      (S.seq, 8), (S.kind, 4), (S.eventKind, 4), (S.step, 8), (S.timestampNs, 8), (S.tokens, 8),
      (S.loss, 4), (S.lr, 4), (S.gradNorm, 4), (S.computeBusy, 4), (S.gflops, 4), (S.rank, 4),
      (S.stepNs, 8), (S.forwardNs, 8), (S.backwardNs, 8), (S.optimizerNs, 8), (S.commNs, 8),
      (S.dataNs, 8), (S.allReduceCount, 8), (S.allReduceBytes, 8), (S.allReduceTotalNs, 8),
      (S.allReduceMaxNs, 8), (S.rssBytes, 8), (S.paramBytes, 8), (S.gradBytes, 8),
      (S.optimizerBytes, 8), (S.activationBytes, 8), (S.histogram, 64), (S.checksum, 8),
    ]
    assertDisjoint(step, within: S.size)
    let event: [(Int, Int)] = [
      (S.seq, 8), (S.kind, 4), (S.eventKind, 4), (S.step, 8), (S.timestampNs, 8), (S.textLength, 4),
      (S.eventRank, 4), (S.text, S.textCapacity), (S.checksum, 8),
    ]
    assertDisjoint(event, within: S.size)
    typealias R = SegmentLayout.RankHeader
    let rank: [(Int, Int)] = [
      (R.writeIndex, 8), (R.heartbeatNs, 8), (R.state, 8), (R.lastStep, 8), (R.ackedDesiredState, 8),
      (R.ackedStep, 8), (R.checkpointsSaved, 8), (R.lastCheckpointStep, 8), (R.pid, 4),
      (R.worldRank, 4), (R.localRank, 4), (R.attached, 4), (R.host, R.hostCapacity),
      (R.waitingIn, 8), (R.waitSinceNs, 8),
    ]
    assertDisjoint(rank, within: R.stride)
    typealias Sh = SegmentLayout.Shard
    assertDisjoint(
      [(Sh.name, Sh.nameCapacity), (Sh.dimensionCount, 4), (Sh.split, 4), (Sh.splitDim, 4), (Sh.rankCount, 4), (Sh.shape, 32)],
      within: Sh.headerSize)
    assertDisjoint([(Sh.rangeCount, 4), (Sh.ranges, 64), (Sh.description, Sh.descriptionCapacity)], within: Sh.rankPartSize)
  }

  private func assertDisjoint(_ fields: [(Int, Int)], within size: Int, file: StaticString = #filePath, line: UInt = #line) {
    let sorted = fields.sorted { $0.0 < $1.0 }
    for (a, b) in zip(sorted, sorted.dropFirst()) {
      XCTAssertLessThanOrEqual(a.0 + a.1, b.0, "field at \(a.0) overlaps field at \(b.0)", file: file, line: line)
    }
    for f in fields {
      XCTAssertEqual(f.0 % min(f.1, 8), 0, "field at \(f.0) misaligned", file: file, line: line)
      XCTAssertLessThanOrEqual(f.0 + f.1, size, file: file, line: line)
    }
  }

  func testGeometryIsPageAligned() {
    for (w, t, n, s) in [(1, 1, 0, 16), (2, 2, 16, 4096), (16, 4, 16, 64), (12, 3, 7, 1 << 20)] {
      let g = SegmentGeometry(worldSize: w, tp: t, shardCount: n, slotCount: s)
      for off in [g.jobDescriptionOffset, g.controlOffset, g.rankHeadersOffset, g.ringsOffset, g.totalSize] {
        XCTAssertEqual(off % 4096, 0)
      }
      XCTAssertGreaterThanOrEqual(g.jobDescriptionSize, n * g.shardEntrySize)
      XCTAssertGreaterThanOrEqual(g.rankHeadersSize, w * 128)
      XCTAssertEqual(g.totalSize, g.ringsOffset + w * s * 256)
    }
  }

  func testDescriptionRoundTrips() throws {
    let job = uniqueJob("desc")
    defer { removeJob(job) }
    let d = smallDescription(job)
    let w = try SegmentWriter.create(d, in: .default, slotCount: 64)
    XCTAssertEqual(w.info.description, d)
    let r = try JobReader(job: job, in: .default)
    XCTAssertEqual(r.info.description, d)
    XCTAssertEqual(r.info.slotCount, 64)
    XCTAssertEqual(r.info.ownerUID, geteuid())
    XCTAssertEqual(r.info.creatorPid, getpid())
    XCTAssertEqual(r.info.incarnation, w.info.incarnation)
    XCTAssertEqual(r.info.creationTime, Date().timeIntervalSince1970, accuracy: 10)
    XCTAssertEqual(r.info.shards.count, 16)
    let qkv = try XCTUnwrap(r.info.shards.first { $0.name == "qkvw" })
    XCTAssertEqual(qkv.split, .column)
    XCTAssertEqual(qkv.ranks[1], [32..<64, 96..<128, 160..<192])
    XCTAssertEqual(qkv.rankDescriptions[1], "heads 2–3 of 4: q/k/v rows 32–63 of each 64")
    XCTAssertThrowsError(try SegmentWriter.create(d, in: .default, slotCount: 64)) { e in
      XCTAssertEqual(e as? TelemetryError, .alreadyExists(job))
    }
  }

  /// The header's feature word (minor version 3) carries the features to the reader, and names
  /// them as the dashboard shows them.
  func testFeaturesRoundTrip() throws {
    for (sp, dist, recompute, grad, tpo, labels) in [
      (false, false, RunFeatures.Recompute.none, false, false, [String]()), (false, true, .none, false, false, ["DistOpt"]),
      (true, true, .selective, false, true, ["SP", "DistOpt", "recompute=selective", "OverlapTP"]),
      (true, false, .full, true, false, ["SP", "recompute=full", "OverlapGrad"]),
      (false, true, .none, true, true, ["DistOpt", "OverlapGrad", "OverlapTP"]),
    ] {
      let job = uniqueJob("feat")
      defer { removeJob(job) }
      var d = smallDescription(job)
      d.features = RunFeatures(sequenceParallel: sp, distributedOptimizer: dist, recompute: recompute,
                               overlapGradReduce: grad, overlapTP: tpo)
      _ = try SegmentWriter.create(d, in: .default, slotCount: 64)
      let r = try JobReader(job: job, in: .default)
      XCTAssertEqual(r.info.versionMinor, 3)
      XCTAssertEqual(r.info.features, d.features)
      XCTAssertEqual(r.info.features.labels, labels)
      XCTAssertEqual(r.info.features.rawValue, (sp ? 1 : 0) | (dist ? 2 : 0) | recompute.rawValue << 2 | (grad ? 16 : 0) | (tpo ? 32 : 0),
                     "bit 0 SP, bit 1 DistOpt, bits 2-3 recompute, bit 4 overlapped gradient reduction, bit 5 TP overlap")
    }
  }

  func testEncoderWritesEveryStepFieldAtItsLayoutOffset() {
    typealias S = SegmentLayout.Slot
    // Every field of StepMetrics has a place: a field added without one fails here.
    let placed = StepSlots.integers.count + StepSlots.floats.count + StepSlots.halfWords.count
      + StepSlots.words.count + 1  // + histogram
    XCTAssertEqual(Mirror(reflecting: StepMetrics()).children.count, placed)
    var m = StepMetrics()
    for (i, f) in StepSlots.integers.enumerated() { m[keyPath: f.field] = 100 + i }
    for (i, f) in StepSlots.floats.enumerated() { m[keyPath: f.field] = 0.5 + Float(i) }
    for (i, f) in StepSlots.words.enumerated() { m[keyPath: f.field] = 1_000_000_007 &* UInt64(i + 1) }
    for (i, f) in StepSlots.halfWords.enumerated() { m[keyPath: f.field] = 70_000 + UInt32(i) }
    for b in 0..<LatencyHistogram.bucketCount { m.allReduceHistogram[b] = UInt32(7 * b + 1) }
    let p = UnsafeMutableRawPointer.allocate(byteCount: S.payloadSize, alignment: 8)
    defer { p.deallocate() }
    RecordCodec.encode(m, timestampNs: 4242, rank: 3, into: p)
    func load<T>(_ offset: Int, _ t: T.Type) -> T { p.load(fromByteOffset: offset - S.payload, as: T.self) }
    XCTAssertEqual(load(S.kind, UInt32.self), S.Kind.step)
    XCTAssertEqual(load(S.timestampNs, UInt64.self), 4242)
    XCTAssertEqual(load(S.rank, UInt32.self), 3)
    for f in StepSlots.integers { XCTAssertEqual(load(f.offset, Int64.self), Int64(m[keyPath: f.field]), "offset \(f.offset)") }
    for f in StepSlots.floats { XCTAssertEqual(load(f.offset, Float.self), m[keyPath: f.field], "offset \(f.offset)") }
    for f in StepSlots.words { XCTAssertEqual(load(f.offset, UInt64.self), m[keyPath: f.field], "offset \(f.offset)") }
    for f in StepSlots.halfWords { XCTAssertEqual(load(f.offset, UInt32.self), m[keyPath: f.field], "offset \(f.offset)") }
    for b in 0..<LatencyHistogram.bucketCount { XCTAssertEqual(load(S.histogram + 4 * b, UInt32.self), m.allReduceHistogram[b]) }
    guard case .record(.step(let r)) = RecordCodec.decode(UnsafeRawPointer(p), index: 9) else { return XCTFail("not a step") }
    XCTAssertEqual(r.metrics, m)
    XCTAssertEqual(r.index, 9)
  }

  func testStepAndEventRecordsRoundTrip() throws {
    let job = uniqueJob("rec")
    defer { removeJob(job) }
    let w = try SegmentWriter.create(smallDescription(job), in: .default, slotCount: 16)
    let r0 = try w.rankWriter(worldRank: 0)
    let r1 = try w.rankWriter(worldRank: 1, localRank: 1)
    let reader = try JobReader(job: job, in: .default)
    var rec = SyntheticJob.plausibleRecord(step: 7, rank: 0, model: w.info.model)
    rec.timestampNs = 123
    rec.allReduceHistogram[15] = 99
    r0.writeStep(rec)
    r0.writeEvent(.checkpointSaved, step: 7, text: "/tmp/ckpt/step7 ✓")
    r1.writeEvent(.error, step: 3, text: String(repeating: "é", count: 300))
    let polls = reader.poll()
    XCTAssertEqual(polls[0].steps.count, 1)
    let got = polls[0].steps[0]
    XCTAssertEqual(got.step, 7)
    XCTAssertEqual(got.loss, rec.loss)
    XCTAssertEqual(got.lr, rec.lr)
    XCTAssertEqual(got.gradNorm, rec.gradNorm)
    XCTAssertEqual(got.tokens, rec.tokens)
    XCTAssertEqual(got.stepNs, rec.stepNs)
    XCTAssertEqual(got.forwardNs, rec.forwardNs)
    XCTAssertEqual(got.backwardNs, rec.backwardNs)
    XCTAssertEqual(got.optimizerNs, rec.optimizerNs)
    XCTAssertEqual(got.commNs, rec.commNs)
    XCTAssertEqual(got.dataNs, rec.dataNs)
    XCTAssertEqual(got.allReduceCount, rec.allReduceCount)
    XCTAssertEqual(got.allReduceBytes, rec.allReduceBytes)
    XCTAssertEqual(got.allReduceTotalNs, rec.allReduceTotalNs)
    XCTAssertEqual(got.allReduceMaxNs, rec.allReduceMaxNs)
    XCTAssertEqual(got.rssBytes, rec.rssBytes)
    XCTAssertEqual(got.paramBytes, rec.paramBytes)
    XCTAssertEqual(got.gradBytes, rec.gradBytes)
    XCTAssertEqual(got.optimizerBytes, rec.optimizerBytes)
    XCTAssertEqual(got.activationBytes, rec.activationBytes)
    XCTAssertEqual(got.computeBusy, rec.computeBusy)
    XCTAssertEqual(got.gflops, rec.gflops)
    XCTAssertEqual(got.timestampNs, 123)
    XCTAssertEqual(got.rank, 0)
    XCTAssertEqual(got.index, 0)
    for b in 0..<16 { XCTAssertEqual(got.allReduceHistogram[b], rec.allReduceHistogram[b]) }
    XCTAssertEqual(got.metrics, rec.metrics)
    XCTAssertEqual(polls[0].events, [{ var e = EventRecord(kind: .checkpointSaved, step: 7, text: "/tmp/ckpt/step7 ✓"); e.index = 1; e.timestampNs = polls[0].events.first?.timestampNs ?? 0; return e }()])
    XCTAssertEqual(polls[1].events.count, 1)
    XCTAssertEqual(polls[1].events[0].rank, 1)
    XCTAssertEqual(polls[1].events[0].text, String(repeating: "é", count: 104))  // 208 bytes
    XCTAssertEqual(polls[0].lost, 0)
    // Nothing new on a second poll.
    XCTAssertEqual(reader.poll(rank: 0).steps.count, 0)
  }

  func testLostRecordsAreCountedExactly() throws {
    let job = uniqueJob("lost")
    defer { removeJob(job) }
    let w = try SegmentWriter.create(smallDescription(job, worldSize: 1, tp: 1), in: .default, slotCount: 16)
    let r0 = try w.rankWriter(worldRank: 0)
    let reader = try JobReader(job: job, in: .default)
    for s in 1...5 { var r = StepRecord(); r.step = s; r0.writeStep(r) }
    XCTAssertEqual(reader.poll(rank: 0).steps.map(\.step), [1, 2, 3, 4, 5])
    for s in 6...40 { var r = StepRecord(); r.step = s; r0.writeStep(r) }
    let p = reader.poll(rank: 0)
    XCTAssertEqual(p.lost, 19)
    XCTAssertEqual(p.steps.map(\.step), Array(25...40))
    XCTAssertEqual(p.writeIndex, 40)
    reader.seekToStart()
    let again = reader.poll(rank: 0)
    XCTAssertEqual(again.lost, 24)
    XCTAssertEqual(again.steps.count, 16)
    reader.seekToEnd(keepLast: 2)
    XCTAssertEqual(reader.poll(rank: 0).steps.map(\.step), [39, 40])
    XCTAssertEqual(reader.latestStep(rank: 0)?.step, 40)
  }
}

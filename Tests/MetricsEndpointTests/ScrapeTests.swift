import Foundation
import Glibc
import JobSchema
import Telemetry
import XCTest
import TelemetryFixtures

@testable import MetricsEndpoint

/// Scrapes of synthetic jobs (one process writes every rank's records), in a namespace of their
/// own: the values against the records computed independently, the job states, and segments that
/// are corrupt or vanish.
final class ScrapeTests: XCTestCase {
  private let space = SegmentSpace(namespace: "promtest\(getpid())")

  private func scrape(_ s: MetricsScraper, _ f: ExpositionFormat = .prometheusText) throws -> [Sample] {
    try parseSamples(String(decoding: s.scrape(f), as: UTF8.self))
  }

  func testEveryRanksValuesAreItsNewestStepRecord() throws {
    let name = uniqueJob("values")
    let job = try SyntheticJob(job: name, in: space, worldSize: 4, tp: 2)
    defer { try? job.remove() }
    job.advance(steps: 7)
    let scraper = MetricsScraper(space: space)
    scraper.coalesceNs = 0
    let samples = try scrape(scraper)
    for rank in 0..<4 {
      let r = SyntheticJob.plausibleRecord(step: 7, rank: rank, model: job.description.model)
      let labels = ["job": name, "rank": "\(rank)", "tp_rank": "\(rank % 2)", "dp_rank": "\(rank / 2)", "node": "0"]
      XCTAssertEqual(samples.value("tptop_step", labels), 7)
      XCTAssertEqual(samples.value("tptop_loss", labels), Double(r.loss))
      XCTAssertEqual(samples.value("tptop_learning_rate", labels), Double(r.lr))
      XCTAssertEqual(samples.value("tptop_grad_norm", labels), Double(r.gradNorm))
      XCTAssertEqual(samples.value("tptop_step_seconds", labels)!, Double(r.stepNs) / 1e9)
      XCTAssertEqual(samples.value("tptop_tokens_per_second", labels)!, Double(r.tokens) / (Double(r.stepNs) / 1e9), accuracy: 1e-6)
      XCTAssertEqual(samples.value("tptop_comm_exposed_seconds", labels)!, Double(r.commNs) / 1e9)
      XCTAssertEqual(samples.value("tptop_comm_in_flight_seconds", labels)!, Double(max(r.allReduceTotalNs, r.commNs)) / 1e9)
      for (kind, bytes) in [("params", r.paramBytes), ("grads", r.gradBytes), ("optimizer", r.optimizerBytes),
                            ("activations", r.activationBytes), ("rss", r.rssBytes)] {
        XCTAssertEqual(samples.value("tptop_memory_bytes", labels.merging(["kind": kind]) { a, _ in a }), Double(bytes), kind)
      }
      XCTAssertLessThan(samples.value("tptop_heartbeat_age_seconds", labels)!, 60)
      XCTAssertEqual(samples.value("tptop_records_lost_total", labels), 0)
      // the histogram: every step's log2 buckets, cumulative, le = 2^(i+1) µs
      var perBucket = [Double](repeating: 0, count: 16)
      for step in 1...7 {
        let h = SyntheticJob.plausibleRecord(step: step, rank: rank, model: job.description.model).allReduceHistogram
        for i in 0..<16 { perBucket[i] += Double(h[i]) }
      }
      let buckets = samples.matching("tptop_allreduce_latency_seconds_bucket", labels)
      XCTAssertEqual(buckets.count, 16)
      for b in buckets {
        let le = b.labels["le"]!
        let bound = le == "+Inf" ? Double.infinity : Double(le)!
        // bucket i holds [2^i, 2^(i+1)) µs: counted under le when 2^(i+1) µs <= le
        var expected = 0.0
        for i in 0..<16 {
          let upper: Double = i == 15 ? .infinity : Double(1 << (i + 1)) / 1e6
          if upper <= bound { expected += perBucket[i] }
        }
        XCTAssertEqual(b.value, expected, "le=\(le)")
      }
      XCTAssertEqual(samples.value("tptop_allreduce_latency_seconds_count", labels), perBucket.reduce(0, +))
      let sum = samples.value("tptop_allreduce_latency_seconds_sum", labels)!
      var lower = 0.0  // every call at its bucket's lower bound, 2^i µs
      for i in 0..<16 { lower += perBucket[i] * Double(1 << i) / 1e6 }
      XCTAssertGreaterThanOrEqual(sum, lower)
      XCTAssertLessThan(sum, 2 * lower)
    }
    XCTAssertEqual(samples.value("tptop_job_state", ["job": name, "state": "running"]), 1)
    XCTAssertEqual(samples.matching("tptop_job_state", ["job": name]).filter { $0.value == 1 }.count, 1)
    XCTAssertEqual(samples.matching("tptop_job_state", ["job": name]).count, MetricFamilies.JobStateLabel.allCases.count)
    let info = samples.matching("tptop_job_info", ["job": name])
    XCTAssertEqual(info.count, 1)
    XCTAssertEqual(info.first?.labels["tp"], "2")
    XCTAssertEqual(info.first?.labels["dp"], "2")
    XCTAssertEqual(info.first?.labels["world_size"], "4")
    XCTAssertEqual(info.first?.labels["preset"], "synthetic")
    XCTAssertEqual(info.first?.labels["sequence_parallel"], "false")
    XCTAssertEqual(samples.value("tptop_nodes_lost", ["job": name]), 0)
    XCTAssertEqual(samples.value("tptop_segments_unreadable_total"), 0)

    // a later scrape adds only the new steps to the histogram
    job.advance(steps: 3)
    let later = try scrape(scraper)
    let count = later.value("tptop_allreduce_latency_seconds_count", ["job": name, "rank": "0"])
    let perStep = Double(SyntheticJob.plausibleRecord(step: 1, rank: 0, model: job.description.model).allReduceCount)
    XCTAssertEqual(count, 10 * perStep)
    XCTAssertEqual(later.value("tptop_step", ["job": name, "rank": "0"]), 10)
  }

  /// Every field of the step field table that names a gauge is exposed for each rank, with the
  /// newest record's value in the gauge's unit.
  /// Nanoseconds become seconds by a division, so a value reads as a person expects
  /// (0.038164723, not 0.038164723000000005 from a multiplication by the inexact 1e-9).
  func testSecondsAreExactDivisionsOfNanoseconds() throws {
    let seconds = try XCTUnwrap(StepFields.all.first { $0.metric?.family == "tptop_step_seconds" }?.metric)
    XCTAssertEqual(seconds.scaled(38_164_723), 0.038164723)
    XCTAssertEqual("\(seconds.scaled(38_164_723))", "0.038164723")
    XCTAssertNotEqual("\(38_164_723 * 1e-9)", "0.038164723", "the multiplication this replaces")
    let bytes = try XCTUnwrap(StepFields.all.first { $0.metric?.family == "tptop_memory_bytes" }?.metric)
    XCTAssertEqual(bytes.scaled(123_456_789), 123_456_789)
  }

  func testEveryStepFieldGaugeIsExposed() throws {
    let (name, job, scraper) = try twoStepJob("fields")
    defer { try? job.remove() }
    let samples = try scrape(scraper)
    let newest = SyntheticJob.plausibleRecord(step: 2, rank: 1, model: job.description.model)
    var gauges = 0
    for f in StepFields.all {
      guard let m = f.metric else { continue }
      gauges += 1
      XCTAssertTrue(MetricFamilies.all.contains { $0.name == m.family }, "\(f.name): no family \(m.family)")
      var labels = ["job": name, "rank": "1"]
      if let l = m.label { labels[l.name] = l.value }
      let v = try XCTUnwrap(samples.value(m.family, labels), "\(f.name): \(m.family) \(labels) not exposed")
      let want = f.value(newest.metrics) * m.scale
      XCTAssertEqual(v, want, accuracy: 1e-6 * max(1, abs(want)), f.name)
    }
    XCTAssertGreaterThanOrEqual(gauges, 12, "loss, lr, grad norm, step time, tokens/s, comm (2), memory (5)")
  }

  /// A synthetic job of two ranks after two steps, and a scraper of it alone.
  private func twoStepJob(_ tag: String) throws -> (String, SyntheticJob, MetricsScraper) {
    let name = uniqueJob(tag)
    let job = try SyntheticJob(job: name, in: space, worldSize: 2, tp: 2)
    job.advance(steps: 2)
    let scraper = MetricsScraper(space: space, only: name)
    scraper.coalesceNs = 0
    return (name, job, scraper)
  }

  func testJobStatesFollowTheRanks() throws {
    let (name, job, scraper) = try twoStepJob("states")
    defer { try? job.remove() }
    func current() throws -> [String] {
      try scrape(scraper).matching("tptop_job_state", ["job": name]).filter { $0.value == 1 }.map { $0.labels["state"]! }
    }
    XCTAssertEqual(try current(), ["running"])
    job.setState(.paused)
    XCTAssertEqual(try current(), ["paused"])
    job.setState(.checkpointing)
    XCTAssertEqual(try current(), ["checkpointing"])
    // rank 1 silent for a minute while rank 0 waits for it in an all-reduce
    job.setState(.running)
    let now = telemetryMonotonicNanos()
    job.rankWriters[1].heartbeat(nowNs: now - 60_000_000_000)
    job.rankWriters[0].enterCollective(kind: CollectiveKind.allReduce.rawValue, ordinal: 1, step: 3, nowNs: now)
    job.rankWriters[0].heartbeat(nowNs: now)
    let stalled = try scrape(scraper)
    XCTAssertEqual(stalled.matching("tptop_job_state", ["job": name]).filter { $0.value == 1 }.map { $0.labels["state"]! }, ["stalled"])
    XCTAssertGreaterThan(stalled.value("tptop_heartbeat_age_seconds", ["job": name, "rank": "1"])!, 59)
    job.rankWriters[0].leaveCollective()
    job.finish()
    XCTAssertEqual(try current(), ["stopped"], "ended before its planned last step: the word ls says")
    job.finish(failed: true)
    XCTAssertEqual(try current(), ["failed"])
  }

  func testCorruptAndVanishingSegmentsAreCountedAndSkipped() throws {
    let good = uniqueJob("good")
    let job = try SyntheticJob(job: good, in: space, worldSize: 2, tp: 2)
    defer { try? job.remove() }
    job.advance(steps: 1)
    let bad = uniqueJob("bad")
    let fd = shm_open("/" + space.prefix + bad, O_RDWR | O_CREAT | O_EXCL, 0o600)
    XCTAssertGreaterThanOrEqual(fd, 0)
    var junk = [UInt8](repeating: 0xA5, count: 65536)
    XCTAssertEqual(write(fd, &junk, junk.count), junk.count)
    close(fd)
    defer { shm_unlink("/" + space.prefix + bad) }
    let scraper = MetricsScraper(space: space)
    scraper.coalesceNs = 0
    var samples = try scrape(scraper)
    XCTAssertEqual(samples.value("tptop_segments_unreadable_total"), 1)
    XCTAssertEqual(samples.value("tptop_step", ["job": good, "rank": "1"]), 1)
    XCTAssertTrue(samples.matching("tptop_step", ["job": bad]).isEmpty)
    // the same bad segment is counted once, not once per scrape
    samples = try scrape(scraper)
    XCTAssertEqual(samples.value("tptop_segments_unreadable_total"), 1)
    // a job whose segment vanishes loses its series; nothing else changes
    try job.remove()
    samples = try scrape(scraper)
    XCTAssertTrue(samples.matching("tptop_step", ["job": good]).isEmpty)
    XCTAssertTrue(samples.matching("tptop_job_state", ["job": good]).isEmpty)
    XCTAssertEqual(samples.value("tptop_segments_unreadable_total"), 1)
  }

  func testASegmentCutShortWhileServedIsSkippedNotAFault() throws {
    let name = uniqueJob("cut")
    let job = try SyntheticJob(job: name, in: space, worldSize: 4, tp: 2)
    defer { try? job.remove() }
    job.advance(steps: 2)
    let scraper = MetricsScraper(space: space)
    scraper.coalesceNs = 0
    XCTAssertEqual(try scrape(scraper).value("tptop_step", ["job": name, "rank": "3"]), 2)
    // cut the segment to its first page while the server has it mapped: the rings are gone
    let fd = shm_open("/" + space.prefix + name, O_RDWR, 0)
    XCTAssertGreaterThanOrEqual(fd, 0)
    XCTAssertEqual(ftruncate(fd, 4096), 0)
    close(fd)
    let samples = try scrape(scraper)
    XCTAssertTrue(samples.matching("tptop_step", ["job": name]).isEmpty)
    XCTAssertEqual(samples.value("tptop_segments_unreadable_total"), 1)
  }

  func testAScrapeDependsOnTheRanksNotTheHistory() throws {
    let name = uniqueJob("history")
    let job = try SyntheticJob(job: name, in: space, worldSize: 8, tp: 4, slotCount: 64)
    defer { try? job.remove() }
    job.advance(steps: 10)
    let scraper = MetricsScraper(space: space, only: name)
    scraper.coalesceNs = 0
    let early = scraper.scrape(.prometheusText)
    // 5000 steps later (rings of 64 slots lapped many times): as many series, the overwritten
    // records counted as lost, the histogram counting only what was read
    job.advance(steps: 5000)
    let late = scraper.scrape(.prometheusText)
    let a = try parseSamples(String(decoding: early, as: UTF8.self))
    let b = try parseSamples(String(decoding: late, as: UTF8.self))
    XCTAssertEqual(a.count, b.count)
    XCTAssertEqual(Set(a.map(\.name)), Set(b.map(\.name)))
    XCTAssertEqual(b.value("tptop_step", ["rank": "3"]), 5010)
    XCTAssertEqual(b.value("tptop_records_lost_total", ["rank": "3"]), Double(5000 - 64))
    let perStep = Double(SyntheticJob.plausibleRecord(step: 1, rank: 3, model: job.description.model).allReduceCount)
    XCTAssertEqual(b.value("tptop_allreduce_latency_seconds_count", ["rank": "3"]), (10 + 64) * perStep)
  }

  func testAJobOfManyRanksIsOneFamilyPerMetric() throws {
    // 150 ranks: their series in three registries (64 ranks each), beside a job of 2 ranks
    let big = uniqueJob("many"), small = uniqueJob("few")
    let a = try SyntheticJob(job: big, in: space, worldSize: 150, tp: 2)
    defer { try? a.remove() }
    let b = try SyntheticJob(job: small, in: space, worldSize: 2, tp: 2)
    defer { try? b.remove() }
    a.advance(steps: 3)
    b.advance(steps: 3)
    let scraper = MetricsScraper(space: space)
    scraper.coalesceNs = 0
    for format in [ExpositionFormat.prometheusText, .openMetrics] {
      let text = String(decoding: scraper.scrape(format), as: UTF8.self)
      let lines = text.split(separator: "\n")
      // each family's header once, and its samples right after it (contiguous)
      let types = lines.filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
      XCTAssertEqual(types.count, Set(types).count, "a family twice in \(format)")
      XCTAssertEqual(Set(types.map { String($0) }).count, MetricFamilies.all.count, "\(format)")
      var family = ""
      var seen: Set<String> = []
      for line in lines where !line.hasPrefix("# EOF") {
        if line.hasPrefix("# TYPE ") {
          family = String(line.split(separator: " ")[2])
          XCTAssertTrue(seen.insert(family).inserted)
        } else if !line.hasPrefix("#") {
          XCTAssertTrue(line.hasPrefix(family), "\(line.prefix(60)) outside its family \(family)")
        }
      }
      let samples = try parseSamples(text)
      XCTAssertEqual(samples.matching("tptop_step", ["job": big]).count, 150)
      XCTAssertEqual(samples.matching("tptop_step", ["job": small]).count, 2)
      XCTAssertEqual(samples.matching("tptop_memory_bytes", ["job": big]).count, 150 * 5)
      XCTAssertEqual(Set(samples.matching("tptop_loss", ["job": big]).map { $0.labels["rank"]! }).count, 150)
      XCTAssertEqual(samples.value("tptop_step", ["job": big, "rank": "149"]), 3)
    }
  }

  func testOpenMetricsOutputOfARealRegistry() throws {
    let name = uniqueJob("om")
    let job = try SyntheticJob(job: name, in: space, worldSize: 2, tp: 2)
    defer { try? job.remove() }
    job.advance(steps: 1)
    let scraper = MetricsScraper(space: space, only: name)
    let text = String(decoding: scraper.scrape(.openMetrics), as: UTF8.self)
    XCTAssertTrue(text.hasSuffix("# EOF\n"))
    XCTAssertTrue(text.contains("# TYPE tptop_records_lost counter\n"))
    XCTAssertTrue(text.contains("# TYPE tptop_segments_unreadable counter\n"))
    XCTAssertTrue(text.contains("tptop_records_lost_total{"))
    XCTAssertTrue(text.contains("# TYPE tptop_allreduce_latency_seconds histogram\n"))
    XCTAssertEqual(try parseSamples(text).value("tptop_step", ["rank": "0"]), 1)
  }
}

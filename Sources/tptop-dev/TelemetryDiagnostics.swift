// tptop-dev's commands that exercise the telemetry segment without a trainer: the write-cost
// benchmark, the multi-process stress test's writer and reader, and a synthetic job that obeys
// the control page like the trainer does.

import ArgumentParser
import Foundation
import JobSchema
import TelemetryFixtures
import Telemetry

// MARK: bench-telemetry

struct BenchTelemetry: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-telemetry", abstract: "Measure the cost of writing one telemetry record.",
    discussion: """
      Times batches of --batch records on a 4096-slot ring (one clock read per
      batch, so the clock's cost is spread); median and p99 are over the per-record
      means of the batches. Then the same with a reader process polling every
      millisecond, the reader's cost per record, and the observer's whole per-step
      path (clock read, record, heartbeat, ack).
      """)

  @Option(help: "Records per measurement.") var records: Int = 2_000_000
  @Option(help: "Records per timed batch (the clock is read once per batch).") var batch: Int = 16
  @Option(name: .customLong("step-ms"), help: "Training step time, ms, to express the per-step cost as overhead.")
  var stepMs: Double?

  func validate() throws {
    guard records >= 1000 && records <= 1_000_000_000 else { throw ValidationError("--records must be in 1000...1e9") }
    guard batch >= 1 && batch <= 4096 else { throw ValidationError("--batch must be in 1...4096") }
  }

  func run(in space: SegmentSpace) throws {
    let job = "bench-\(getpid())"
    let synthetic = try reportingErrors { try SyntheticJob(job: job, in: space, worldSize: 1, tp: 1, slotCount: 4096) }
    defer { try? synthetic.remove() }
    let w = synthetic.rankWriters[0]
    var rec = SyntheticJob.plausibleRecord(step: 1, rank: 0, model: synthetic.description.model)
    rec.timestampNs = telemetryMonotonicNanos()

    // Option values are copied out: reading a property wrapper inside the timed loop is slow.
    let batch = self.batch
    let records = self.records
    let template = rec
    func measure() -> (median: Double, p99: Double) {
      let batches = records / batch
      var samples = [Double](repeating: 0, count: batches)
      var r = template  // a local, not the captured (boxed) variable
      for k in 0..<batches {
        let t0 = telemetryMonotonicNanos()
        for _ in 0..<batch {
          r.step &+= 1
          w.writeStep(r)
        }
        let t1 = telemetryMonotonicNanos()
        samples[k] = Double(t1 - t0) / Double(batch)
      }
      samples.sort()
      return (samples[batches / 2], samples[min(batches - 1, batches * 99 / 100)])
    }

    _ = measure()  // warm up caches and page tables
    let alone = measure()
    emit("BENCH telemetry_write_ns_median \(String(format: "%.1f", alone.median)) ns")
    emit("BENCH telemetry_write_ns_p99 \(String(format: "%.1f", alone.p99)) ns")

    // The same with a reader process polling every millisecond.
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["stress-reader", "--job", job, "--interval-us", "1000", "--quiet"]
    let reader = try reportingErrors { try JobReader(job: job, in: space) }
    do { try child.run() } catch { throw failure("cannot start the reader process: \(error)") }
    usleep(200_000)
    let withReader = measure()
    w.setState(.finished)
    child.waitUntilExit()
    emit("BENCH telemetry_write_with_reader_1khz_ns_median \(String(format: "%.1f", withReader.median)) ns")
    emit("BENCH telemetry_write_with_reader_1khz_ns_p99 \(String(format: "%.1f", withReader.p99)) ns")

    // Reader cost: copy, check and decode every record of a full ring.
    let readRounds = 200
    var readSamples = [Double](repeating: 0, count: readRounds)
    var sink = RankPoll(rank: 0)
    for k in 0..<readRounds {
      reader.seekToStart()
      let t0 = telemetryMonotonicNanos()
      let n = reader.poll(rank: 0, into: &sink) { _ in }
      readSamples[k] = Double(telemetryMonotonicNanos() - t0) / Double(max(n, 1))
    }
    readSamples.sort()
    emit("BENCH telemetry_read_ns_median \(String(format: "%.1f", readSamples[readRounds / 2])) ns")

    // What the observer does per step: clock read, record, heartbeat, acknowledgement.
    let steps = 200_000
    var stepSamples = [Double](repeating: 0, count: steps)
    for k in 0..<steps {
      let t0 = telemetryMonotonicNanos()
      rec.timestampNs = telemetryMonotonicNanos()
      rec.step &+= 1
      w.writeStep(rec)
      w.heartbeat(nowNs: rec.timestampNs)
      w.acknowledge(.run, step: rec.step)
      stepSamples[k] = Double(telemetryMonotonicNanos() - t0)
    }
    stepSamples.sort()
    let perStep = stepSamples[steps / 2]
    emit("BENCH telemetry_per_step_ns_median \(String(format: "%.1f", perStep)) ns")
    if let ms = stepMs, ms > 0 {
      emit("BENCH telemetry_overhead_pct \(String(format: "%.5f", perStep / (ms * 1e6) * 100)) %")
    }
  }
}

// MARK: stress

/// The value every field of stress record `i` must hold.
enum StressPattern {
  static func record(_ i: UInt64) -> StepRecord {
    var r = StepRecord()
    r.step = Int(truncatingIfNeeded: i)
    r.timestampNs = i &* 0x9E37_79B9_7F4A_7C15
    r.tokens = Int(truncatingIfNeeded: i &* 3)
    r.loss = Float(i % 100_000) / 7
    r.lr = Float(i % 1000) / 1e6
    r.gradNorm = Float(i % 777)
    r.stepNs = i ^ 0x5555_5555
    r.forwardNs = i &+ 1
    r.backwardNs = i &+ 2
    r.optimizerNs = i &+ 3
    r.commNs = i &+ 4
    r.dataNs = i &+ 5
    r.allReduceCount = Int(truncatingIfNeeded: i % 4096)
    r.allReduceBytes = i &* 7
    r.allReduceTotalNs = i &* 11
    r.allReduceMaxNs = i &* 13
    for b in 0..<LatencyHistogram.bucketCount { r.allReduceHistogram[b] = UInt32(truncatingIfNeeded: i &+ UInt64(b)) }
    r.rssBytes = ~i
    r.paramBytes = i << 1
    r.gradBytes = i << 2
    r.optimizerBytes = i << 3
    r.activationBytes = i << 4
    r.computeBusy = Float(i % 100) / 100
    r.gflops = Float(i % 333)
    return r
  }

  static func matches(_ r: StepRecord, _ i: UInt64) -> Bool {
    let e = record(i)
    return r.metrics == e.metrics && r.timestampNs == e.timestampNs && r.rank == 0
  }

  static let eventEvery: UInt64 = 1000
}

struct StressWriter: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "stress-writer", abstract: "Write pattern records at full speed.")

  @Option var job: String
  @Option(help: "Ring slots.") var slots: Int = 64
  @Option(help: "Seconds to write for.") var seconds: Double = 5
  @Option(name: .customLong("start-delay-ms"), help: "Wait before writing (readers attach).") var startDelayMs: Int = 300

  func run(in space: SegmentSpace) throws {
    let model = ModelShape(layers: 1, heads: 1, channels: 1, vocab: 1, paddedVocab: 1, maxSeq: 1, batch: 1, seq: 1)
    let d = JobDescription(name: job, model: model, preset: "stress", worldSize: 1, tp: 1, dp: 1, totalSteps: 0, shards: [])
    let seg = try reportingErrors { try SegmentWriter.create(d, in: space, slotCount: slots) }
    let w = try reportingErrors { try seg.rankWriter(worldRank: 0) }
    w.setState(.running)
    usleep(useconds_t(max(startDelayMs, 0) * 1000))
    let end = telemetryMonotonicNanos() + UInt64(seconds * 1e9)
    var i: UInt64 = 0
    while true {
      for _ in 0..<1024 {
        if i % StressPattern.eventEvery == StressPattern.eventEvery - 1 {
          w.writeEvent(.checkpointSaved, step: Int(i), text: "event \(i)")
        } else {
          w.writeStep(StressPattern.record(i))
        }
        i += 1
      }
      if telemetryMonotonicNanos() >= end { break }
    }
    w.heartbeat()
    w.setState(.finished)
    emit("WROTE \(i)")
  }
}

struct StressReader: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "stress-reader", abstract: "Read and verify pattern records until the writer finishes.")

  @Option var job: String
  @Option(name: .customLong("attach-timeout"), help: "Seconds to wait for the segment.") var attachTimeout: Double = 20
  @Option(name: .customLong("interval-us"), help: "Sleep between polls, µs (0: poll continuously).") var intervalUs: Int = 0
  @Flag var quiet = false

  func run(in space: SegmentSpace) throws {
    var reader: JobReader?
    let deadline = Date().addingTimeInterval(attachTimeout)
    while reader == nil {
      do {
        reader = try JobReader(job: job, in: space)
      } catch let e as TelemetryError {
        if Date() > deadline { throw failure(e.description) }
        usleep(2000)
      }
    }
    guard let r = reader else { throw failure("no segment") }
    var total = RankPoll(rank: 0)
    var accepted: UInt64 = 0
    var mismatched: UInt64 = 0
    var lastIndex: Int64 = -1
    var outOfOrder: UInt64 = 0
    func drain() -> Int {
      r.poll(rank: 0, into: &total) { rec in
        accepted += 1
        let idx = rec.index
        if Int64(idx) <= lastIndex { outOfOrder += 1 }
        lastIndex = Int64(idx)
        switch rec {
        case .step(let s):
          if !StressPattern.matches(s, idx) || idx % StressPattern.eventEvery == StressPattern.eventEvery - 1 { mismatched += 1 }
        case .event(let e):
          if e.text != "event \(idx)" || e.step != Int(idx) || e.kind != .checkpointSaved { mismatched += 1 }
        case .tensorStats:
          mismatched += 1  // the stress writer publishes none
        }
      }
    }
    // The writer marks itself finished after its last record; check that only when idle.
    // (Option values are copied out: reading a property wrapper in the loop is slow.)
    let sleepUs = intervalUs
    while true {
      if drain() == 0 && r.rankState(0) == .finished { break }
      if sleepUs > 0 { usleep(useconds_t(sleepUs)) }
    }
    _ = drain()  // everything published before `finished`
    let head = total.writeIndex
    if quiet { return }
    emit("STRESS reads=\(total.reads) accepted=\(accepted) lost=\(total.lost) torn=\(total.torn) corrupt=\(total.corrupt) mismatched=\(mismatched) outoforder=\(outOfOrder) head=\(head)")
  }
}

// MARK: synthetic-job

struct SyntheticJobCommand: SegmentCommand {
  static let configuration = CommandConfiguration(
    commandName: "synthetic-job",
    abstract: "Run a fake job that writes plausible records and obeys the control page like tptrain.")

  @Option var job: String
  @Option var ranks: Int = 2
  @Option var tp: Int = 2
  @Option var steps: Int = 100
  @Option(name: .customLong("step-ms")) var stepMs: Int = 20
  @Option var slots: Int = 4096
  @Flag(name: .customLong("keep-running"), help: "Do not finish after the last step (wait for stop).")
  var keepRunning = false

  func run(in space: SegmentSpace) throws {
    let job = try reportingErrors { try SyntheticJob(job: self.job, in: space, worldSize: ranks, tp: tp, slotCount: slots, totalSteps: steps) }
    let rank0 = job.rankWriters[0]
    var checkpoints: UInt64 = 0
    func stopNow() {
      for w in job.rankWriters {
        w.writeEvent(.stopped, step: job.step)
        w.acknowledge(.stop, step: job.step)
      }
      job.finish()
    }
    while job.step < steps || keepRunning {
      var c = rank0.pollControl()
      if c.checkpointRequests != checkpoints {
        checkpoints = c.checkpointRequests
        for w in job.rankWriters {
          w.writeEvent(.checkpointSaved, step: job.step, text: "/tmp/\(self.job)/step\(job.step).bin")
          w.checkpointSaved(step: job.step)
        }
      }
      if c.desired == .pause {
        for w in job.rankWriters {
          w.setState(.paused)
          w.acknowledge(.pause, step: job.step)
          w.writeEvent(.paused, step: job.step)
        }
        while c.desired == .pause {
          usleep(10_000)
          for w in job.rankWriters { w.heartbeat() }
          c = rank0.pollControl()
        }
        if c.desired == .run {
          for w in job.rankWriters {
            w.writeEvent(.resumed, step: job.step)
            w.acknowledge(.run, step: job.step)
            w.setState(.running)
          }
        }
      }
      if c.desired == .stop {
        stopNow()
        emit("stopped at step \(job.step)")
        return
      }
      if job.step < steps {
        job.advance(steps: 1)
        for w in job.rankWriters { w.acknowledge(.run, step: job.step) }
      } else {
        for w in job.rankWriters { w.heartbeat() }
      }
      usleep(useconds_t(max(stepMs, 0) * 1000))
    }
    job.finish()
    emit("finished at step \(job.step)")
  }
}

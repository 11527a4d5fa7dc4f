// Ties collection, state and encoding together for the server: finds the namespace's jobs,
// collects each, updates its series, and answers a scrape with the registry's text. One lock
// keeps one collection at a time; a scrape within `coalesce` of the last collection reuses it,
// so a storm of scrapers costs one collection, not one each.

import Glibc
import NIOCore
import Prometheus
import Telemetry

/// The jobs of one namespace (a `SegmentSpace`) as Prometheus series.
public final class MetricsScraper: @unchecked Sendable {
  /// The registry every series lives in.
  public let registry = PrometheusCollectorRegistry()
  /// Only this job when set (`--job`).
  public let only: String?
  /// The namespace whose jobs it reads.
  public let space: SegmentSpace
  /// Nanoseconds within which a scrape reuses the previous collection and encoding.
  public var coalesceNs: UInt64 = 100_000_000

  private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
  private var jobs: [String: (collector: JobCollector, series: JobSeries)] = [:]
  /// Segments that could not be read, by name, with their inode (counted once each).
  private var unreadable: [String: UInt64] = [:]
  private let unreadableCounter: Counter
  private var lastCollectionNs: UInt64 = 0
  private var encoded: [ExpositionFormat: ByteBuffer] = [:]
  /// The registries' texts and their merged exposition, kept between encodings (their capacity
  /// is reused: no fresh pages each scrape).
  private var parts: [[UInt8]] = []
  private var text: [UInt8] = []

  /// A scraper of every job of namespace `space`, or of its job `only`.
  public init(space: SegmentSpace, only: String? = nil) {
    self.space = space
    self.only = only
    pthread_mutex_init(mutex, nil)
    let f = MetricFamilies.segmentsUnreadable
    unreadableCounter = registry.makeCounter(descriptor: f.descriptor)
  }

  deinit {
    pthread_mutex_destroy(mutex)
    mutex.deallocate()
  }

  private func locked<T>(_ body: () -> T) -> T {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    return body()
  }

  /// Jobs with series now.
  public var jobNames: [String] { locked { jobs.keys.sorted() } }

  /// The exposition in `format`, from a collection at most `coalesceNs` old.
  public func scrape(_ format: ExpositionFormat) -> [UInt8] { Array(scrapeBuffer(format).readableBytesView) }

  /// `scrape(format)` as a buffer that every response of the same collection shares (a
  /// hundred concurrent scrapers hold one copy, not a hundred).
  public func scrapeBuffer(_ format: ExpositionFormat) -> ByteBuffer {
    locked {
      refreshIfDue()
      if let cached = encoded[format] { return cached }
      // the server's and the jobs' own series, then each job's ranks (registered by groups, see
      // JobSeries), as one exposition
      let registries = [registry] + jobs.keys.sorted().flatMap { jobs[$0]!.series.rankRegistries }
      while parts.count < registries.count { parts.append([]) }
      if parts.count > registries.count { parts.removeLast(parts.count - registries.count) }
      for (i, r) in registries.enumerated() {
        parts[i].removeAll(keepingCapacity: true)
        r.emit(into: &parts[i])
      }
      text.removeAll(keepingCapacity: true)
      ExpositionFormat.mergeFamilies(parts[...], into: &text)
      let out = ByteBuffer(bytes: format.encode(text))
      encoded[format] = out
      return out
    }
  }

  /// Collects every job now unless a collection is younger than `coalesceNs` (the background
  /// tick: keeps up with the rings between sparse scrapes).
  public func refresh() { locked { refreshIfDue() } }

  /// Collects every job now, however recent the last collection.
  public func forceRefresh() {
    locked {
      lastCollectionNs = 0
      refreshIfDue()
    }
  }

  private func refreshIfDue() {
    let now = telemetryMonotonicNanos()
    guard lastCollectionNs == 0 || now &- lastCollectionNs >= coalesceNs else { return }
    collectAll()
    lastCollectionNs = telemetryMonotonicNanos()
    encoded.removeAll(keepingCapacity: true)
  }

  private func collectAll() {
    let names = only.map { space.allJobs().contains($0) ? [$0] : [] } ?? space.allJobs()
    let present = Set(names)
    // jobs whose segment is gone or was recreated under the same name lose their series; one cut
    // shorter than its mapping is unreadable (reading past its end would fault)
    for (name, entry) in jobs {
      let file = present.contains(name) ? segmentFile(job: name, in: space) : nil
      guard let file, file.inode == entry.collector.inode else {
        entry.series.unregister()
        jobs[name] = nil
        continue
      }
      if file.size < entry.collector.reader.info.segmentSize {
        entry.series.unregister()
        jobs[name] = nil
        unreadable[name] = file.inode
        unreadableCounter.increment()
      }
    }
    for name in unreadable.keys where !present.contains(name) { unreadable[name] = nil }
    for name in names {
      if jobs[name] == nil {
        let inode = segmentInode(job: name, in: space)
        if let bad = unreadable[name], bad == inode { continue }
        do {
          let c = try JobCollector(job: name, in: space)
          jobs[name] = (c, JobSeries(registry: registry, job: name, info: c.reader.info))
          unreadable[name] = nil
        } catch TelemetryError.notReady {
          continue  // being created: the next collection will find it ready
        } catch {
          // corrupt, truncated, another user's, or gone between listing and attaching
          unreadable[name] = inode ?? 0
          unreadableCounter.increment()
          continue
        }
      }
      if let entry = jobs[name] { entry.series.update(entry.collector.collect()) }
    }
  }
}

// Exposed communication per rank and the straggler: what the Comm view's table shows and what
// the Overview marks with ▲. Pure functions of the history, apart from any drawing.

/// One rank's communication over the last `CommExposure.window` steps, per step (ns).
public struct Exposure: Equatable, Sendable {
  public var exposed = 0.0, hidden = 0.0, peerWait = 0.0, step = 0.0
  /// Exposed time not spent waiting for a peer: the transfers themselves.
  public var transfer: Double { max(0, exposed - peerWait) }
}

/// The rank the others wait for, and how it was found.
public struct Straggler: Equatable, Sendable {
  public enum Measure: String, Sendable { case peerWait = "peer wait", exposed = "exposed" }
  public var rank: Int
  /// How much longer the others (their median) are blocked per step than this rank (ns).
  public var othersWaitNs: Double
  public var measure: Measure
}

public enum CommExposure {
  /// Steps averaged.
  public static let window = 32
  /// The others' median must be at least this many times the least waiting rank's.
  public static let factor = 2.0
  /// ... and at least this much longer per step (ns).
  public static let floorNs = 500_000.0

  /// Each rank's mean exposure over its last `window` samples (nil: no samples yet).
  public static func exposures(_ h: JobHistory, window: Int = window) -> [Exposure?] {
    (0..<h.job.worldSize).map { r in
      let recent = h.samples[r].suffix(window)
      guard !recent.isEmpty else { return nil }
      var e = Exposure()
      for s in recent {
        e.exposed += Double(s.metrics.commExposedNs)
        e.hidden += Double(s.metrics.commHiddenNs)
        e.peerWait += Double(s.metrics.commPeerWaitNs)
        e.step += Double(s.stepNs)
      }
      let k = Double(recent.count)
      e.exposed /= k; e.hidden /= k; e.peerWait /= k; e.step /= k
      return e
    }
  }

  /// The rank that waits least while the others (their median) wait at least `factor` times as
  /// long and `floorNs` longer a step: a rank that arrives last at every collective waits for
  /// nobody, and its peers' extra wait is its lateness. `values` per rank (nil: no samples).
  public static func standsOut(_ values: [Double?]) -> (rank: Int, least: Double, othersMedian: Double)? {
    let known = values.enumerated().compactMap { i, v in v.map { (i, $0) } }
    guard known.count > 1, let least = known.min(by: { $0.1 < $1.1 }) else { return nil }
    let others = known.filter { $0.0 != least.0 }.map(\.1).sorted()
    return (least.0, least.1, others[(others.count - 1) / 2])
  }

  /// The straggler, by the peer wait the blocking collectives split out, else by the whole
  /// exposed time (the waits of non-blocking collectives, which overlap runs on, are not split).
  public static func straggler(_ e: [Exposure?]) -> Straggler? {
    for measure in [Straggler.Measure.peerWait, .exposed] {
      let values = e.map { $0.map { measure == .peerWait ? $0.peerWait : $0.exposed } }
      guard let s = standsOut(values) else { return nil }
      let extra = s.othersMedian - s.least
      if extra >= floorNs && s.othersMedian >= factor * s.least {
        return Straggler(rank: s.rank, othersWaitNs: extra, measure: measure)
      }
    }
    return nil
  }
}

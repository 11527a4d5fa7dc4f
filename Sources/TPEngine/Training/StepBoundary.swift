// What every rank applies at a step boundary, and the two ways it travels. Rank 0 reads the
// control page (desired state, checkpoint-request counter); every rank contributes the signal it
// received, so a signal that reached only one rank stops all of them at the same step.
//
//   running   max all-reduce of three Doubles: rank 0's decision, −∞ from the others; the
//             signal from everyone (the largest wins)
//   paused    most ticks: a broadcast of three Int32 from rank 0 (a sleeping wait instead of a
//             spinning all-reduce); rank 0's own signal rides on it

import JobSchema

/// The decision of one step boundary, agreed by every rank.
struct StepBoundary {
  var decision: ControlDecision
  /// The strongest signal any rank contributed (0: none).
  var signal: Int32

  /// Rank 0's contribution carries `decision`; the others' carry nothing but their `signal`.
  init(decision: ControlDecision?, signal: Int32) {
    self.decision = decision ?? ControlDecision()
    self.signal = signal
    fromRankZero = decision != nil
  }

  /// Whether this contribution holds rank 0's reading of the control page.
  private let fromRankZero: Bool

  // MARK: The max all-reduce form

  /// (desired, checkpoint requests, signal) as the max all-reduce sums them up: every rank but
  /// rank 0 contributes −∞ for the first two.
  var reduced: (Double, Double, Double) {
    fromRankZero ? (Double(decision.desired.rawValue), Double(decision.checkpointRequests), Double(signal))
      : (-.infinity, -.infinity, Double(signal))
  }

  /// The boundary from a max all-reduce's result; `requests` stands in for a counter no rank
  /// contributed (cannot happen while rank 0 takes part, kept for safety).
  init(reduced r: (Double, Double, Double), requests: Int32) {
    self.init(decision: ControlDecision(desired: Self.desired(r.0),
                                        checkpointRequests: r.1.isFinite ? Int32(truncatingIfNeeded: Int64(r.1)) : requests),
              signal: Int32(r.2))
  }

  // MARK: The broadcast form (paused ticks)

  /// (desired, checkpoint requests, signal) as rank 0 broadcasts them.
  var broadcast: (Int32, Int32, Int32) {
    (Int32(decision.desired.rawValue), decision.checkpointRequests, signal)
  }

  init(broadcast b: (Int32, Int32, Int32)) {
    self.init(decision: ControlDecision(desired: Self.desired(Double(b.0)), checkpointRequests: b.1), signal: b.2)
  }

  /// A desired state from its number; anything that is not one (no rank 0 contribution) is `run`.
  static func desired(_ raw: Double) -> DesiredState {
    guard raw.isFinite, raw >= 0, raw <= Double(UInt64(UInt32.max)) else { return .run }
    return DesiredState(rawValue: UInt64(raw)) ?? .run
  }
}

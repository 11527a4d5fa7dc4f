import JobSchema
@testable import TPEngine
import XCTest

/// The step boundary's two packings: what rank 0 decides and the strongest signal reach every
/// rank alike, whichever way they travel.
final class StepBoundaryTests: XCTestCase {
  /// The max all-reduce of every rank's contribution, as `Communicator.allReduce(.max)` computes it.
  func maxReduce(_ parts: [StepBoundary]) -> (Double, Double, Double) {
    parts.map(\.reduced).reduce((-.infinity, -.infinity, -.infinity)) { (max($0.0, $1.0), max($0.1, $1.1), max($0.2, $1.2)) }
  }

  func testTheAllReduceCarriesRankZerosDecisionAndTheStrongestSignal() {
    for desired in DesiredState.allCases {
      let rank0 = StepBoundary(decision: ControlDecision(desired: desired, checkpointRequests: 7), signal: 0)
      let others = [StepBoundary(decision: nil, signal: 15), StepBoundary(decision: nil, signal: 0)]
      let agreed = StepBoundary(reduced: maxReduce([rank0] + others), requests: 3)
      XCTAssertEqual(agreed.decision, ControlDecision(desired: desired, checkpointRequests: 7))
      XCTAssertEqual(agreed.signal, 15, "a signal that reached one rank stops them all")
    }
    // the other ranks alone (no control page read): run, and the counter stays where it was
    let none = StepBoundary(reduced: maxReduce([StepBoundary(decision: nil, signal: 2)]), requests: 3)
    XCTAssertEqual(none.decision, ControlDecision(desired: .run, checkpointRequests: 3))
    XCTAssertEqual(none.signal, 2)
  }

  func testTheBroadcastRoundTrips() {
    for desired in DesiredState.allCases {
      let sent = StepBoundary(decision: ControlDecision(desired: desired, checkpointRequests: 41), signal: 2)
      let got = StepBoundary(broadcast: sent.broadcast)
      XCTAssertEqual(got.decision, sent.decision)
      XCTAssertEqual(got.signal, 2)
    }
  }

  func testNumbersThatAreNoStateReadAsRun() {
    for raw in [-Double.infinity, -1, 3, 1e30, .nan] {
      XCTAssertEqual(StepBoundary.desired(raw), .run, "\(raw)")
    }
    XCTAssertEqual(StepBoundary.desired(2), .stop)
  }
}
